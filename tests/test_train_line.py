"""One training at a time, with a line (issue 17): a run started while another trains waits with its
place shown and starts by itself when the one before it ends; Stop takes a waiting run out of the
line. Real worker processes on the tiny model."""

from __future__ import annotations

from engine.chat.models import ModelManager
from engine.hardware import detect
from engine.train import launch, line, runs
from tests import test_train_runs
from tests.test_train_runs import ended, steps_of, wait_for

chat_file, make_config = test_train_runs.chat_file, test_train_runs.make_config  # the same fixtures


def test_runs_started_during_training_wait_in_line_and_start_in_turn(workspace, make_config):
    manager = ModelManager(workspace, detect())
    first, note = launch.start(workspace, manager, make_config(max_steps=30), "first")
    assert first.state in ("queued", "running") and "line" not in note
    second, note = launch.start(workspace, manager, make_config(), "second")
    third, _ = launch.start(workspace, manager, make_config(), "third")
    assert second.state == third.state == "waiting" and not second.live
    assert line.place(workspace, "second") == 2 and line.place(workspace, "third") == 3
    assert "place 2" in note and "**first**" in note

    wait_for("second", workspace, lambda r: r.state in ("queued", "running", "completed"), timeout=300)
    assert runs.load_run(workspace, "first").state == "completed"  # the second started only after the first ended
    assert line.place(workspace, "third") == 2
    runs_after = [wait_for(name, workspace, lambda r: r.state == "completed", timeout=300) for name in ("second", "third")]
    assert all(steps_of(r)[-1] == 6 and r.adapter for r in runs_after)
    assert runs_after[0].status.ended <= runs_after[1].status.started  # never two at once


def test_stop_takes_a_waiting_run_out_of_the_line(workspace, make_config):
    manager = ModelManager(workspace, detect())
    launch.start(workspace, manager, make_config(max_steps=12), "first")
    launch.start(workspace, manager, make_config(), "second")
    left = line.leave(workspace, "second")
    assert left.state == "stopped" and line.place(workspace, "second") == 0
    wait_for("first", workspace, ended, timeout=300)
    assert runs.load_run(workspace, "second").state == "stopped" and not steps_of(runs.load_run(workspace, "second"))


def test_a_line_left_standing_by_a_killed_worker_moves_on_at_the_next_start(workspace, make_config):
    # A worker killed outright (SIGKILL, out of memory) never starts the run after it: the next Start does.
    stranded = runs.create_run(workspace, make_config(), "stranded")
    runs.update_status(stranded.path, state="waiting")
    assert runs.active_run(workspace) is None
    newest, note = launch.start(workspace, ModelManager(workspace, detect()), make_config(), "newest")
    assert runs.load_run(workspace, "stranded").state in ("queued", "running", "completed")
    assert newest.state == "waiting" and "place 2" in note and "**stranded**" in note
    wait_for("newest", workspace, lambda r: r.state == "completed", timeout=300)
