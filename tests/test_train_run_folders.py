"""Run folders anywhere and run records that may be damaged: a headless run outside the workspace's
runs/ trains, is killed, resumes and stops; failures say only what is true; a damaged status.json,
events.jsonl or probes.jsonl never breaks listing, loading, Start, Delete or Resume; Start refuses
a data set or model it cannot use before any worker starts. Real worker processes, tiny model."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.train import probes, runs
from engine.train.config import ConfigError
from engine.train.runs import RunError
from engine.train.sources import check_sources
from tests import test_train_runs
from tests.test_train_runs import ended, wait_for

chat_file, make_config = test_train_runs.chat_file, test_train_runs.make_config  # the same fixtures

ROOT = Path(__file__).resolve().parent.parent
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")


def engine_train(folder: Path, workspace, out: Path, *args: str) -> subprocess.Popen:
    """`python -m engine train FOLDER` as a person would run it: the workspace named only by $WORKBENCH_HOME."""
    env = {**os.environ, "WORKBENCH_HOME": str(workspace.root)}
    with open(out, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "engine", "train", str(folder), *args], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)


def until(predicate, proc: subprocess.Popen, out: Path, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (found := predicate()):
            return found
        assert proc.poll() is None, f"the command ended ({proc.returncode}):\n{out.read_text()[-3000:]}"
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"timed out:\n{out.read_text()[-3000:]}")


def test_a_run_folder_outside_the_workspace_trains_is_killed_resumes_and_stops(workspace, make_config, tmp_path):
    folder = tmp_path / "elsewhere" / "deep" / "my-run"
    folder.mkdir(parents=True)
    (folder / "run.yaml").write_text(make_config(max_steps=400, save_steps=3).to_yaml())

    first = engine_train(folder, workspace, tmp_path / "first.out")
    until(lambda: len(runs.read_run(folder).checkpoints) >= 2, first, tmp_path / "first.out")
    with pytest.raises(RunError, match="training lock"):  # it holds this workspace's training lock
        runs.ensure_idle(workspace)
    first.send_signal(signal.SIGKILL)
    first.wait(30)

    run = runs.read_run(folder)
    assert run.state == "failed" and "ended unexpectedly" in run.status.error
    checkpoint = run.latest_checkpoint
    assert f"({checkpoint.name})" in run.status.advice
    killed_at = int(checkpoint.name.split("-")[1])

    def resumed_past_it() -> bool:
        events = runs.read_run(folder).events
        starts = [i for i, e in enumerate(events) if e["type"] == "start"]
        return len(starts) == 2 and any(e["type"] == "step" and e["step"] >= killed_at + 2 for e in events[starts[1]:])

    second = engine_train(folder, workspace, tmp_path / "second.out")
    until(resumed_past_it, second, tmp_path / "second.out")
    second.send_signal(signal.SIGTERM)  # Stop: a checkpoint and the adapter at the end of the step
    assert second.wait(120) == 0, (tmp_path / "second.out").read_text()[-3000:]

    run = runs.read_run(folder)
    assert run.state == "stopped", run.status
    assert run.adapter is not None and (run.adapter / "adapter_model.safetensors").exists()
    assert any(f"Resuming from {checkpoint.name}" in e.get("text", "") for e in run.events)
    steps = [s["step"] for s in run.current("step")]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= killed_at + 2
    assert int(run.latest_checkpoint.name.split("-")[1]) == steps[-1]
    assert "stopped" in (tmp_path / "second.out").read_text()
    # Nothing was made where the folder's place would have put a workspace; the run is no workspace run.
    assert not (tmp_path / "elsewhere" / "runs").exists() and runs.list_runs(workspace) == []
    assert not (folder / "worker.log").exists()


@pytest.fixture
def broken_model(tmp_path: Path, tiny_model_path: Path) -> Path:
    """A model folder whose weights file is not a safetensors file: loading it fails in the library."""
    path = tmp_path / "broken-model"
    shutil.copytree(tiny_model_path, path)
    (path / "model.safetensors").write_bytes(os.urandom(3000))
    return path


def with_model(config, path: Path):
    return config.model_copy(update={"model": config.model.model_copy(update={"name_or_path": str(path)})})


def test_a_failure_says_where_its_log_really_is_and_promises_no_checkpoint(workspace, make_config, broken_model,
                                                                            tmp_path):
    # A CLI run: its output is the terminal, and there is no worker.log.
    folder = tmp_path / "cli-run"
    folder.mkdir()
    (folder / "run.yaml").write_text(with_model(make_config(), broken_model).to_yaml())
    proc = engine_train(folder, workspace, tmp_path / "cli.out")
    assert proc.wait(180) == 1
    status = runs.read_run(folder).status
    assert status.state == "failed" and status.error.startswith("Training failed")
    assert not CLASS_NAME.search(status.error) and "Traceback" not in status.error
    assert "worker.log" not in status.advice and "output of the training command" in status.advice
    assert "No checkpoint was saved" in status.advice and "continues from" not in status.advice
    printed = (tmp_path / "cli.out").read_text()
    assert "Traceback" in printed and "SafetensorError" in printed  # the class and traceback stay in the log

    # Started by the app: the output goes to the run's worker.log, and the status says so.
    runs.start_run(workspace, with_model(make_config(), broken_model), name="broken")
    run = wait_for("broken", workspace, ended)
    assert run.state == "failed" and f"The full error is in {run.log_file}." in run.status.advice
    assert "Traceback" in run.log_file.read_text()


DAMAGED_STATUS = {
    "empty": "",
    "cut in half": json.dumps({"state": "completed", "created": "2026-01-01T00:00:00+00:00", "pid": None})[:30],
    "not an object": "[1, 2, 3]",
    "wrong types": json.dumps({"state": 5, "pid": "twelve", "created": "yesterday"}),
    "unknown state": json.dumps({"state": "exploded"}),
}


@pytest.mark.parametrize("content", DAMAGED_STATUS.values(), ids=DAMAGED_STATUS.keys())
def test_a_damaged_status_is_listed_as_damaged_and_the_rest_works(workspace, make_config, content):
    from ui.train_view import progress_text, runs_table

    good = runs.create_run(workspace, make_config(), name="good")
    runs.update_status(good.path, state="completed")
    for name in ("bad", "worse"):
        runs.create_run(workspace, make_config(), name=name).path.joinpath("status.json").write_text(content)

    listed = {r.name: r for r in runs.list_runs(workspace)}
    assert listed["good"].state == "completed"
    bad = listed["bad"]
    assert bad.state == "damaged" and not bad.live and "status.json is damaged" in bad.status.error
    assert "Resume" in bad.status.advice and "Delete" in bad.status.advice
    assert bad.status.created is not None  # still sorted by when it was made
    assert runs.active_run(workspace) is None
    table = runs_table(workspace)  # what the Train tab and a restarted app draw
    assert dict(zip(table["run"], table["state"])) == {"good": "completed", "bad": "damaged", "worse": "damaged"}
    assert "status.json is damaged" in progress_text(runs.load_run(workspace, "bad"))

    runs.delete_run(workspace, "worse")
    assert not (workspace.runs / "worse").exists()
    runs.ensure_idle(workspace)  # what Start checks first: damage blocks nothing


def test_resume_rewrites_a_damaged_status(workspace, make_config):
    """Resume takes the run from its checkpoints and run.yaml, and the worker writes a whole status."""
    run = runs.create_run(workspace, make_config(max_steps=2), name="mended")
    run.path.joinpath("status.json").write_text('{"state": "runn')
    runs.resume_run(workspace, "mended")
    run = wait_for("mended", workspace, ended)
    assert run.state == "completed" and run.adapter is not None and run.status.error is None
    assert json.loads(run.path.joinpath("status.json").read_text())["state"] == "completed"


def test_a_training_run_whose_status_is_damaged_is_still_live_and_stops(workspace, make_config):
    runs.start_run(workspace, make_config(max_steps=500, save_steps=400), name="alive")
    wait_for("alive", workspace, lambda r: len(r.current("step")) >= 1 or ended(r))
    (workspace.runs / "alive" / "status.json").write_text("{")
    run = runs.load_run(workspace, "alive")
    assert run.state == "running" and run.status.pid  # its worker holds the run's lock
    with pytest.raises(RunError, match="stop it before deleting"):
        runs.delete_run(workspace, "alive")
    runs.stop_run(workspace, "alive")
    run = wait_for("alive", workspace, ended)
    assert run.state == "stopped" and run.adapter is not None


def test_damaged_events_and_probes_lines_are_left_out_and_said(workspace, make_config):
    from engine.compare.prompts import before_after
    from ui.train_view import charts, log_tail, progress_text

    run = runs.create_run(workspace, make_config(), name="scarred")
    step = {"type": "step", "max_steps": 6, "epoch": 0.5, "loss": 1.5, "learning_rate": 1e-3, "memory_gb": 1.0,
            "peak_memory_gb": 1.0, "tokens_per_s": 10.0}
    lines = [
        json.dumps({**step, "step": 1}),
        json.dumps({**step, "step": "two"}),  # wrong type
        json.dumps({**step, "step": 3, "loss": None}),  # missing value
        json.dumps({"type": "message", "text": 7}),
        "[1, 2]", "\x00\xff garbage", '{"type": "step", "st',  # not objects, or cut off
        json.dumps({**step, "step": 4, "loss": 0.9}),
    ]
    run.path.joinpath("events.jsonl").write_text("\n".join(lines) + "\n")
    run.path.joinpath("probes.jsonl").write_text("\n".join([
        json.dumps({"step": 0, "prompts": ["Hi?"], "answers": ["Hello."]}),
        json.dumps({"step": "x", "prompts": ["Hi?"], "answers": ["Bad."]}),
        json.dumps({"step": 3, "prompts": "Hi?", "answers": None}),
        json.dumps({"step": 3, "prompts": ["Hi?"], "answers": ["Arr."]}),
    ]) + "\n")

    run = runs.load_run(workspace, "scarred")
    assert [e["step"] for e in run.current("step")] == [1, 4] and run.progress()["loss"] == 0.9
    assert run.damaged_records == [
        "3 lines of events.jsonl are damaged and left out; the rest of the run is shown.",
        "2 lines of probes.jsonl are damaged and left out; the rest of the run is shown.",
    ]
    loss, _ = charts(run)
    assert list(loss["step"]) == [1, 4] and "step 4: loss 0.9000" in log_tail(run)
    assert "3 lines of events.jsonl are damaged" in progress_text(run)
    assert probes.grid(run.probes) == (["step", "Hi?"], [[0, "Hello."], [3, "Arr."]])
    assert before_after(run) == (3, [("Hi?", "Hello.", "Arr.")])
    assert probes.recorded_steps(run.path) == {0, 3}


def test_start_refuses_a_data_set_or_model_it_cannot_use_before_any_worker_starts(workspace, make_config,
                                                                                 tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text((workspace.datasets / "chat.jsonl").read_text())
    refused = {
        "no-such-set": "not one of this workspace's data sets",
        str(workspace.datasets / "missing.jsonl"): "does not exist in this workspace",
        str(outside): "not one of this workspace's data sets",
    }
    for dataset, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            runs.start_run(workspace, make_config().model_copy(update={"dataset": dataset}), name="refused")
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    for model, message in ((not_a_model, "is not a model"), ("no such model!", "not a model this app can load")):
        with pytest.raises(ConfigError, match=message):
            runs.start_run(workspace, with_model(make_config(), model), name="refused")
    assert not (workspace.runs / "refused").exists() and runs.list_runs(workspace) == []

    # What Start takes: a saved data set by name, a file in datasets/, an example shipped with the app.
    saved = workspace.datasets / "pirates"
    saved.mkdir()
    (saved / "data.jsonl").write_text((workspace.datasets / "chat.jsonl").read_text())
    for dataset in ("pirates", str(workspace.datasets / "chat.jsonl"), str(ROOT / "examples/data/pirate.jsonl")):
        config = make_config().model_copy(update={"dataset": dataset})
        assert check_sources(workspace, config) == config


def test_the_cli_refuses_a_run_name_with_control_characters(workspace, make_config, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(make_config().to_yaml())
    env = {**os.environ, "WORKBENCH_HOME": str(workspace.root)}
    done = subprocess.run([sys.executable, "-m", "engine", "train", str(config), "--name", "pirate\n"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "'pirate\\n' cannot be a run name" in done.stderr
    assert "Traceback" not in done.stderr and list(workspace.runs.iterdir()) == []


def test_the_app_starts_with_damaged_runs_and_lists_them(workspace, make_config):
    import urllib.request

    from tests.conftest import launched_app

    for name, content in DAMAGED_STATUS.items():
        run = runs.create_run(workspace, make_config(), name=name.replace(" ", "-"))
        run.path.joinpath("status.json").write_text(content)
    scarred = runs.create_run(workspace, make_config(), name="scarred").path
    scarred.joinpath("events.jsonl").write_text('[1]\n{"type": "step", "step": "x"}\n{"type": "st')
    scarred.joinpath("probes.jsonl").write_text('{"step": 0, "prompts": 5}\n')
    with launched_app(workspace, "--no-model") as url:
        config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
    assert all(name.replace(" ", "-") in config for name in DAMAGED_STATUS) and "damaged" in config
