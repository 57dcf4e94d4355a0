"""Run folders (DESIGN.md, decision 2) and the worker processes that fill them.

    runs/<name>/run.yaml       the full validated config
               status.json    state, pid, times, error, advice (written atomically)
               events.jsonl   one JSON object a line: progress and messages
               probes.jsonl   the probe prompts' answers, per step
               checkpoints/   trainer checkpoints (checkpoint-N)
               adapter/       the final or stop-time adapter, with the tokenizer it was trained with
               exports/       written by the export step
               worker.log     the worker's own output, for when something goes really wrong

Everything the UI shows is read from here, so a reloaded page or a restarted app re-attaches to a
live run. A worker holds an exclusive lock on its run folder while it lives (the operating system
drops it when the process dies, however it dies) and one on the workspace's training lock, so only
one run trains at a time.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Iterator

from engine.files import append_jsonl, now, read_json, read_jsonl, write_json, write_text
from engine.train.advice import memory_advice
from engine.train.config import RunConfig
from engine.train.config import load as load_config
from engine.workspace import BadName, Workspace

RUN_FILE, STATUS_FILE, EVENTS_FILE, PROBES_FILE, LOG_FILE = (
    "run.yaml", "status.json", "events.jsonl", "probes.jsonl", "worker.log")
RUN_LOCK = ".worker.lock"
TRAINING_LOCK = ".training.lock"
LIVE = ("queued", "running", "stopping")
STARTUP_GRACE_S = 120  # a queued run whose worker has not taken its lock yet is still starting


class RunError(ValueError):
    """A run operation that cannot be done; the message says why and what to do."""


@dataclass
class Run:
    name: str
    path: Path
    status: dict

    @property
    def state(self) -> str:
        return self.status.get("state", "failed")

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def config(self) -> RunConfig:
        return load_config(self.path / RUN_FILE)

    @cached_property
    def events(self) -> list[dict]:
        """Read once: like `status`, a snapshot of the run when it was loaded (the Train tab draws
        progress, charts and log from one read of a file that grows with every step)."""
        return EventLog(self.path).read()

    def current(self, kind: str = "step") -> list[dict]:
        """The run's `step` (or `eval`) events as its training stands: a resume goes back to a
        checkpoint, so what an ended attempt logged after that checkpoint is dropped."""
        out: list[dict] = []
        for e in self.events:
            if e.get("type") == "start":  # (re)started at this step
                out = [x for x in out if x["step"] <= e["step"]]
            elif e.get("type") == kind:
                out.append(e)
        return out

    @property
    def probes(self) -> list[dict]:
        return read_jsonl(self.path / PROBES_FILE)

    @property
    def adapter(self) -> Path | None:
        path = self.path / "adapter"
        return path if (path / "adapter_config.json").exists() else None

    @property
    def checkpoints(self) -> list[Path]:
        found = [p for p in (self.path / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    @property
    def latest_checkpoint(self) -> Path | None:
        complete = [p for p in self.checkpoints if (p / "trainer_state.json").exists()]
        return complete[-1] if complete else None

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    def progress(self) -> dict:
        """The latest training step's event (step, max_steps, loss, eta...), or {} before the first one."""
        steps = self.current("step")
        return steps[-1] if steps else {}


class EventLog:
    """Appends one JSON object a line to a run's events.jsonl."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / EVENTS_FILE

    def write(self, type: str, **fields) -> None:
        append_jsonl(self.path, {"time": now(), "type": type, **fields})

    def message(self, text: str, level: str = "info") -> None:
        self.write("message", level=level, text=text)

    def read(self) -> list[dict]:
        return read_jsonl(self.path)


def read_status(path: Path) -> dict:
    return read_json(Path(path) / STATUS_FILE, {}) or {}


def update_status(path: Path, **fields) -> dict:
    status = {**read_status(path), **fields}
    write_json(path / STATUS_FILE, status)
    return status


# ---- locks ---------------------------------------------------------------------------------------

def _held(lock_file: Path) -> bool:
    """Whether some process holds an exclusive lock on the file (tested by trying it, then letting go)."""
    if not lock_file.exists():
        return False
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@contextmanager
def worker_locks(run_dir: Path, workspace: Workspace) -> Iterator[None]:
    """Held by the worker for its whole life: its run folder's lock, and the workspace's training lock."""
    run_dir = Path(run_dir)
    with open(run_dir / RUN_LOCK, "a+") as own, open(workspace.runs / TRAINING_LOCK, "a+") as training:
        fcntl.flock(own, fcntl.LOCK_EX)
        try:
            fcntl.flock(training, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            training.seek(0)
            other = training.read().strip() or "another run"
            raise RunError(f"Another training run, '{other}', is running; only one trains at a time. "
                           "Stop it or wait for it to finish, then resume this one.") from None
        training.seek(0)
        training.truncate()
        training.write(run_dir.name)
        training.flush()
        yield


# ---- reading runs --------------------------------------------------------------------------------

def run_dir(workspace: Workspace, name: str) -> Path:
    try:
        return workspace.run_path(name)
    except BadName as e:
        raise RunError(str(e)) from None


def load_run(workspace: Workspace, name: str) -> Run:
    path = run_dir(workspace, name)
    if not (path / RUN_FILE).exists():
        raise RunError(f"There is no run named '{name}'.")
    return _read(path)


def list_runs(workspace: Workspace) -> list[Run]:
    """Every run, newest first."""
    runs = [_read(p.parent) for p in workspace.runs.glob(f"*/{RUN_FILE}")]
    return sorted(runs, key=lambda r: r.status.get("created", ""), reverse=True)


def active_run(workspace: Workspace) -> Run | None:
    """The run that is queued or training now, if any."""
    live = [r for r in list_runs(workspace) if r.live]
    return live[0] if live else None


def _read(path: Path) -> Run:
    status = read_status(path)
    if status.get("state") in LIVE and not _alive(path, status):
        status = _after_death(path, status)
    return Run(path.name, path, status)


def _alive(path: Path, status: dict) -> bool:
    if _held(path / RUN_LOCK):
        return True
    # A queued worker is still importing its libraries before it takes its lock.
    return status.get("state") == "queued" and time.time() - status.get("queued_at", 0) < STARTUP_GRACE_S


def _after_death(path: Path, status: dict) -> dict:
    """The worker is gone while the status says it lives: it was killed or crashed. Record that."""
    if status.get("state") == "stopping":
        return update_status(path, state="stopped", ended=now(), pid=None)
    run = Run(path.name, path, status)
    checkpoint = run.latest_checkpoint
    advice = (f"Resume continues from the last checkpoint ({checkpoint.name})." if checkpoint
              else "No checkpoint was saved yet, so Resume starts it again from the beginning.")
    try:  # the system kills a process that takes too much memory without warning, so say what would help
        advice += " " + memory_advice(run.config, can_4bit=status.get("backend", {}).get("device") == "cuda")
    except ValueError:
        pass
    return update_status(
        path, state="failed", ended=now(), pid=None,
        error="The training process ended unexpectedly (it was killed, or the machine ran out of memory).",
        advice=advice,
    )


# ---- starting, stopping, resuming ----------------------------------------------------------------

def new_name(config: RunConfig) -> str:
    data = Path(config.dataset).stem if config.dataset else "data"
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{config.preset or 'run'}-{data}").strip("-.")[:60] or "run"
    return f"{base}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def create_run(workspace: Workspace, config: RunConfig, name: str | None = None) -> Run:
    """A new run folder holding the config and a queued status; nothing starts yet."""
    name = name or new_name(config)
    path = run_dir(workspace, name)
    if path.exists():
        raise RunError(f"A run named '{name}' already exists; pick another name.")
    path.mkdir(parents=True)
    write_text(path / RUN_FILE, config.to_yaml())
    status = update_status(path, state="queued", created=now(), queued_at=time.time())
    return Run(name, path, status)


def start_run(workspace: Workspace, config: RunConfig, name: str | None = None) -> Run:
    """Create a run folder and start its worker in the background; refused while another run trains."""
    ensure_idle(workspace)
    run = create_run(workspace, absolute_dataset(config), name)
    _spawn(run.path)
    return load_run(workspace, run.name)


def resume_run(workspace: Workspace, name: str, more_epochs: float = 0.0) -> Run:
    """Start the worker again on a stopped, failed or finished run: it continues from its latest
    checkpoint. `more_epochs` extends a run (a finished one needs it to train any further)."""
    run = load_run(workspace, name)
    if run.live:
        raise RunError(f"'{name}' is still {run.state}; it cannot be resumed until it ends.")
    ensure_idle(workspace)
    config = run.config
    if more_epochs > 0:
        if config.train.max_steps:
            last = run.progress()
            per_epoch = last["step"] / last["epoch"] if last.get("epoch") else 0
            if not per_epoch:
                raise RunError(f"'{name}' has no finished steps to measure an epoch by; resume it without more epochs.")
            changes = {"max_steps": config.train.max_steps + max(1, round(more_epochs * per_epoch))}
        else:
            changes = {"epochs": config.train.epochs + more_epochs}
        config = config.model_copy(update={"train": config.train.model_copy(update=changes)})
        write_text(run.path / RUN_FILE, config.to_yaml())
    elif run.state == "completed":
        raise RunError(f"'{name}' has finished all its steps; choose how many more epochs to train it for.")
    update_status(run.path, state="queued", queued_at=time.time(), error=None, advice=None, ended=None)
    _spawn(run.path)
    return load_run(workspace, name)


def stop_run(workspace: Workspace, name: str) -> Run:
    """Ask the worker to stop: it saves a checkpoint and the adapter at the end of the current step."""
    run = load_run(workspace, name)
    if not run.live:
        raise RunError(f"'{name}' is not running (it is {run.state}).")
    update_status(run.path, state="stopping")
    if run.status.get("pid"):
        try:
            os.kill(run.status["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    return load_run(workspace, name)


def delete_run(workspace: Workspace, name: str) -> None:
    run = load_run(workspace, name)
    if run.live:
        raise RunError(f"'{name}' is {run.state}; stop it before deleting it.")
    shutil.rmtree(run.path)


def rename_run(workspace: Workspace, name: str, new: str) -> Run:
    run = load_run(workspace, name)
    if run.live:
        raise RunError(f"'{name}' is {run.state}; stop it before renaming it.")
    target = run_dir(workspace, new)
    if target.exists():
        raise RunError(f"A run named '{new}' already exists; pick another name.")
    run.path.rename(target)
    return load_run(workspace, new)


def ensure_idle(workspace: Workspace) -> None:
    busy = active_run(workspace)
    if busy is not None:
        raise RunError(f"'{busy.name}' is {busy.state}; only one run trains at a time. Stop it or wait for it "
                       "to finish first.")
    if _held(workspace.runs / TRAINING_LOCK):
        raise RunError("Another training process holds this workspace's training lock; wait for it to finish.")


def absolute_dataset(config: RunConfig) -> RunConfig:
    """A data set given as a relative path is made absolute, so the run folder works from anywhere."""
    path = Path(config.dataset).expanduser()
    if path.exists() and not path.is_absolute():
        return config.model_copy(update={"dataset": str(path.resolve())})
    return config


def _spawn(path: Path) -> None:
    with open(path / LOG_FILE, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "engine", "train", str(path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,  # the run outlives the app that started it
        )
    threading.Thread(target=worker.wait, daemon=True).start()  # reaps it when it ends


def fingerprint(workspace: Workspace) -> str:
    """Changes whenever a run is added, removed, renamed, or writes its status, events or probes, so a
    page can redraw only when something changed without knowing a run folder's files."""
    parts = []
    for run in list_runs(workspace):
        stamps = [run.path / f for f in (STATUS_FILE, EVENTS_FILE, PROBES_FILE)]
        parts.append(f"{run.name}:{run.state}:" + ":".join(str(p.stat().st_mtime_ns) if p.exists() else "-" for p in stamps))
    return "|".join(parts)
