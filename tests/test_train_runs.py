"""Training runs in real worker processes on the tiny model: start, finish, stop, crash, resume,
continue, one at a time, and the run folder the UI and the other steps read."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.files import append_jsonl
from engine.i18n import CHINESE, ENGLISH, speaking
from engine.train import runs
from engine.train.config import validate
from engine.train.runs import RunError
from tests.test_i18n_engine import english_words
from ui import train_view

PROMPTS = ["Who are you?", "Say something."]


@pytest.fixture
def chat_file(workspace) -> Path:
    """Sixteen short conversations in the messages shape, every reply ending with a catchphrase, in the
    workspace's datasets/ (Start takes data sets from there or from examples/)."""
    rows = [{"messages": [{"role": "user", "content": f"Question number {i}?"},
                          {"role": "assistant", "content": f"Answer {i}, friend. Arr, matey!"}]} for i in range(16)]
    path = workspace.datasets / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def make_config(tiny_model_path: Path, chat_file: Path):
    def make(**train):
        return validate({
            "model": {"name_or_path": str(tiny_model_path), "max_seq_length": 128},
            "dataset": str(chat_file),
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            "train": {"max_steps": 6, "batch_size": 4, "gradient_accumulation": 1, "learning_rate": 5e-3,
                      "save_steps": 3, "logging_steps": 1, **train},
            "probes": {"prompts": PROMPTS, "max_new_tokens": 6},
        })
    return make


def wait_for(run_name, workspace, predicate, timeout=120.0) -> runs.Run:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = runs.load_run(workspace, run_name)
        if predicate(run):
            return run
        time.sleep(0.2)
    run = runs.load_run(workspace, run_name)
    raise AssertionError(f"timed out; state {run.state}, status {run.status}, log:\n{run.log_file.read_text()[-3000:]}")


def ended(run: runs.Run) -> bool:
    return not run.live


def steps_of(run: runs.Run) -> list[int]:
    return [e["step"] for e in run.events if e["type"] == "step"]


def test_a_run_completes_with_an_adapter_that_changes_the_model(workspace, make_config, tiny_model_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = runs.start_run(workspace, make_config(), name="first")
    assert run.path == workspace.runs / "first" and run.state in ("queued", "running")
    run = wait_for("first", workspace, ended)
    assert run.state == "completed", run.status
    assert run.status.ended and run.status.backend.device == "cpu" and run.status.pid is None
    assert run.config == make_config()

    steps = [e for e in run.events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    last = steps[-1]
    assert last["max_steps"] == 6 and last["eta_s"] == 0 and last["memory_gb"] > 0 and last["tokens_per_s"] > 0
    assert {"loss", "learning_rate", "grad_norm", "epoch", "peak_memory_gb"} <= last.keys()
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert [c.name for c in run.checkpoints] == ["checkpoint-3", "checkpoint-6"]
    assert [p["step"] for p in run.probes] == [0, 3, 6] and all(len(p["answers"]) == 2 for p in run.probes)

    # The adapter loads with peft, carries the model's own chat template, and changes the output.
    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model_path).chat_template
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Question number 3?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    with torch.no_grad():
        before = base(**ids).logits
        tuned = PeftModel.from_pretrained(base, run.adapter)(**ids).logits
    assert not torch.allclose(before, tuned, atol=1e-3)


def test_stop_saves_a_checkpoint_and_the_adapter(workspace, make_config):
    runs.start_run(workspace, make_config(max_steps=500, save_steps=400), name="stopme")
    wait_for("stopme", workspace, lambda r: len(steps_of(r)) >= 2 or ended(r))
    runs.stop_run(workspace, "stopme")
    run = wait_for("stopme", workspace, ended)
    assert run.state == "stopped", run.status
    last = steps_of(run)[-1]
    assert 2 <= last < 500
    assert run.latest_checkpoint.name == f"checkpoint-{last}"
    assert run.adapter is not None and (run.adapter / "tokenizer.json").exists()
    assert any("Stop requested" in e.get("text", "") for e in run.events)


def test_a_killed_run_resumes_from_its_last_checkpoint_and_a_finished_one_continues(workspace, make_config):
    runs.start_run(workspace, make_config(max_steps=400, save_steps=3), name="crash")
    run = wait_for("crash", workspace, lambda r: len(r.checkpoints) >= 2 or ended(r))
    os.kill(run.status.pid, signal.SIGKILL)
    run = wait_for("crash", workspace, ended)
    assert run.state == "failed" and "ended unexpectedly" in run.status.error
    checkpoint = run.latest_checkpoint
    assert f"({checkpoint.name})" in run.status.advice
    resumed_from = int(checkpoint.name.split("-")[1])

    # Resume the remaining steps quickly: the config may change between a crash and its resume.
    run.path.joinpath("run.yaml").write_text(
        make_config(max_steps=resumed_from + 3, save_steps=3).to_yaml())
    runs.resume_run(workspace, "crash")
    run = wait_for("crash", workspace, ended)
    assert run.state == "completed", run.status
    assert any(f"Resuming from {checkpoint.name}" in e.get("text", "") for e in run.events)
    # Steps continue after the checkpoint; what the killed attempt logged past it is not the run's any more.
    assert [e["step"] for e in run.current("step")] == list(range(1, resumed_from + 4))

    with pytest.raises(RunError, match="choose how many more epochs"):
        runs.resume_run(workspace, "crash")
    run = runs.resume_run(workspace, "crash", more_epochs=1)  # 16 rows / batch 4: 4 more steps
    assert run.config.train.max_steps == resumed_from + 3 + 4
    run = wait_for("crash", workspace, ended)
    assert run.state == "completed" and steps_of(run)[-1] == resumed_from + 7


def test_a_resume_replaces_what_the_ended_attempt_logged_past_its_checkpoint(workspace, make_config):
    """Killed at step 8 with checkpoint-6 saved, then resumed: the charts show steps 7 and 8 once,
    from the resumed attempt."""
    run = runs.create_run(workspace, make_config(), name="twice")
    log = runs.EventLog(run.path)
    log.write("start", step=0)
    shown = {"max_steps": 9, "epoch": 1.0, "memory_gb": 1.0, "peak_memory_gb": 1.0}
    for step in range(1, 9):
        log.write("step", step=step, loss=1.0, **shown)
    log.write("eval", step=6, eval_loss=1.0)
    log.write("eval", step=8, eval_loss=1.0)
    log.write("start", step=6)
    for step in range(7, 10):
        log.write("step", step=step, loss=0.5, **shown)
    run = runs.load_run(workspace, "twice")
    assert [(e["step"], e["loss"]) for e in run.current("step")] == [(s, 1.0) for s in range(1, 7)] + [(7, 0.5), (8, 0.5), (9, 0.5)]
    assert [e["step"] for e in run.current("eval")] == [6]
    assert run.progress()["step"] == 9


def test_the_train_tab_draws_a_run_from_one_read_of_its_events(workspace, make_config, monkeypatch):
    """The events file grows by a line a step; progress, charts and log come from one read of it."""
    from ui.train_view import charts, log_tail, progress_text

    run = runs.create_run(workspace, make_config(), name="drawn")
    log = runs.EventLog(run.path)
    for step in range(1, 4):
        log.write("step", step=step, max_steps=6, epoch=step / 6, loss=1.0 / step, learning_rate=1e-3,
                  memory_gb=1.0, peak_memory_gb=1.0, tokens_per_s=10.0)
    reads = []
    read = runs.EventLog.read
    monkeypatch.setattr(runs.EventLog, "read", lambda self: reads.append(1) or read(self))
    run = runs.load_run(workspace, "drawn")
    loss, _ = charts(run)
    assert "step **3 / 6**" in progress_text(run) and list(loss["step"]) == [1, 2, 3]
    assert "step 3: loss 0.3333" in log_tail(run)
    assert len(reads) == 1


CJK = re.compile(r"[\u4e00-\u9fff]")


def test_a_runs_log_reads_in_the_viewers_language(workspace, make_config):
    """The worker writes each log line with its message key and parameters: the Train tab shows the log
    of a real run in Chinese to a Chinese viewer and in English to others. A line of an older run folder
    (its text alone) is shown as it was written."""
    runs.start_run(workspace, make_config(max_steps=2, save_steps=2), name="zh")
    run = wait_for("zh", workspace, ended)
    assert run.state == "completed", run.status
    older = {"time": "2026-01-01T00:00:00+00:00", "type": "message", "level": "info", "text": "An older run's line."}
    append_jsonl(run.path / runs.EVENTS_FILE, older)
    run = runs.load_run(workspace, "zh")
    with speaking(ENGLISH):
        english = train_view.log_tail(run).splitlines()
    with speaking(CHINESE):
        chinese = train_view.log_tail(run).splitlines()
    assert any(line.endswith("Training completed at step 2; the adapter is saved.") for line in english), english
    assert any(line.endswith("训练在第 2 步完成；适配器已保存。") for line in chinese), chinese
    assert any(line.endswith("第 2 步的检查点已保存；探测提示已回答。") for line in chinese), chinese
    assert english[-1].endswith("An older run's line.") and chinese[-1] == english[-1]
    untranslated = [line for line in chinese[:-1] if not CJK.search(line)]
    assert not untranslated and len(chinese) == len(english), untranslated


def test_a_failed_runs_error_reads_in_chinese(workspace, make_config, tmp_path):
    """The error the worker records as it fails, in the log and in status.json, is a message too: the
    Train tab shows both in Chinese (in-process worker, a missing data set)."""
    from engine.train import worker

    config = make_config().model_copy(update={"dataset": str(tmp_path / "missing.jsonl")})
    run = runs.create_run(workspace, config, name="lost")
    assert worker.main(run.path, workspace) == 1
    run = runs.load_run(workspace, "lost")
    assert run.state == "failed" and run.status.error.startswith(f"'{tmp_path / 'missing.jsonl'}' is neither")
    with speaking(CHINESE):
        log, progress = train_view.log_tail(run), train_view.progress_text(run)
    for shown in (log, progress):
        error = [line for line in shown.splitlines() if "missing.jsonl" in line]
        assert len(error) == 1 and CJK.search(error[0]) and not english_words(error[0]), shown
    assert "错误" in log


def test_one_training_at_a_time(workspace, make_config):
    runs.start_run(workspace, make_config(max_steps=500, save_steps=400), name="busy")
    with pytest.raises(RunError, match="'busy' is (queued|running); only one run trains at a time"):
        runs.start_run(workspace, make_config(), name="second")
    assert not (workspace.runs / "second").exists()
    assert runs.active_run(workspace).name == "busy"
    with pytest.raises(RunError, match="stop it before deleting"):
        runs.delete_run(workspace, "busy")
    runs.stop_run(workspace, "busy")
    assert wait_for("busy", workspace, ended).state == "stopped"


def test_a_stop_while_queued_ends_the_run_before_it_trains(workspace, make_config):
    run = runs.create_run(workspace, make_config(), name="early")
    runs.stop_run(workspace, "early")  # no worker yet: the worker sees the request when it starts
    # the worker as Start launches it
    subprocess.run([sys.executable, "-m", "engine", "train", str(run.path), "--workspace", str(workspace.root)],
                   check=True, timeout=300, capture_output=True)
    run = wait_for("early", workspace, ended)
    assert run.state == "stopped" and steps_of(run) == []


def test_worker_errors_end_as_failed_with_a_plain_message(workspace, make_config, tmp_path):
    """A data set that goes missing after Start: the worker fails with the data layer's sentence."""
    data = workspace.datasets / "gone.jsonl"
    data.write_text((workspace.datasets / "chat.jsonl").read_text())
    run = runs.create_run(workspace, make_config().model_copy(update={"dataset": str(data)}), name="nodata")
    data.unlink()
    runs.spawn(run.path, workspace)
    run = wait_for("nodata", workspace, ended)
    assert run.state == "failed" and "gone.jsonl" in run.status.error
    assert "Traceback" not in run.status.error and "Error" not in run.status.error


def test_a_failure_is_recorded_while_the_run_is_still_locked(workspace, make_config, tmp_path, monkeypatch):
    """A reader that finds a live state with no lock held calls the run crashed ("ended unexpectedly"),
    so the worker must write its own failure before it lets go of the lock. (In-process worker.)"""
    from engine.train import worker

    config = make_config().model_copy(update={"dataset": str(tmp_path / "missing.jsonl")})
    run = runs.create_run(workspace, config, name="locked")
    seen = []
    write = worker.update_status

    def watching(path, **fields):
        if fields.get("state") == "failed":
            seen.append(runs.load_run(workspace, "locked").state)  # what a reader sees: live while locked
        return write(path, **fields)

    monkeypatch.setattr(worker, "update_status", watching)
    assert worker.main(run.path, workspace) == 1
    assert seen == ["running"]
    assert "missing.jsonl" in runs.load_run(workspace, "locked").status.error


def test_listing_renaming_and_deleting_runs(workspace, make_config):
    a = runs.create_run(workspace, make_config(), name="a")
    runs.update_status(a.path, state="completed")
    time.sleep(1.1)  # creation times have one-second resolution
    b = runs.create_run(workspace, make_config(), name="b")
    runs.update_status(b.path, state="stopped")
    assert [r.name for r in runs.list_runs(workspace)] == ["b", "a"]
    runs.rename_run(workspace, "a", "a2")
    with pytest.raises(RunError, match="already exists"):
        runs.rename_run(workspace, "a2", "b")
    with pytest.raises(RunError, match="cannot be a run name"):
        runs.rename_run(workspace, "a2", "../escape")
    runs.delete_run(workspace, "a2")
    assert [r.name for r in runs.list_runs(workspace)] == ["b"]
    with pytest.raises(RunError, match="no run named 'a'"):
        runs.load_run(workspace, "a")


def test_running_out_of_memory_fails_the_run_with_concrete_advice(workspace, make_config, tmp_path):
    import resource
    import subprocess
    import sys

    long_reply = " ".join(f"word{i}" for i in range(700))  # about 2,000 tokens a conversation
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Talk."},
                                                     {"role": "assistant", "content": long_reply}]}) + "\n"
                            for _ in range(8)))
    config = make_config(max_steps=2).model_copy(update={"dataset": str(data)})
    config = config.model_copy(update={"model": config.model.model_copy(update={"max_seq_length": 2048})})
    run = runs.create_run(workspace, config, name="oom")

    def small_memory():  # 3 GB of address space: enough to load everything, not for 8,000 tokens' logits
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    done = subprocess.run([sys.executable, "-m", "engine", "train", str(run.path)], preexec_fn=small_memory,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 1
    run = runs.load_run(workspace, "oom")
    assert run.state == "failed" and run.status.error == "Training ran out of memory.", run.status
    assert "batch size to 2 and gradient accumulation to 2" in run.status.advice
    assert "maximum length to 1024" in run.status.advice
