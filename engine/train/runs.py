"""Run folders (DESIGN.md, decision 2) and the worker processes that fill them.

    runs/<name>/run.yaml       the full validated config
               status.json    state, pid, times, error, advice (written atomically)
               events.jsonl   one JSON object a line: progress and messages
               probes.jsonl   the probe prompts' answers, per step
               checkpoints/   trainer checkpoints (checkpoint-N)
               adapter/       the final or stop-time adapter, with the tokenizer it was trained with
               exports/       written by the export step
               worker.log     the output of a worker the app started (a CLI run's goes to its terminal)

Everything the UI shows is read from here, so a reloaded page or a restarted app re-attaches to a
live run. A run folder may also live outside `runs/` (a headless run); its workspace is then the one
named by `--workspace` or `$WORKBENCH_HOME`, never inferred from where the folder is. A worker holds
an exclusive lock on its run folder while it lives (the operating system drops it when the process
dies, however it dies) and one on its workspace's training lock, so only one run trains at a time.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Iterator

from engine.adapters import is_adapter
from engine.files import append_jsonl, now, read_jsonl, write_json, write_text
from engine.i18n import joined, msg
from engine.train.advice import memory_advice
from engine.train.config import RunConfig
from engine.train.config import load as load_config
from engine.train.sources import absolute_dataset, check_sources
from engine.train.status import LIVE, Status, message_fields, usable_event, usable_probe
from engine.train.status import read as read_status_file
from engine.workspace import BadName, Workspace

RUN_FILE, STATUS_FILE, EVENTS_FILE, PROBES_FILE, LOG_FILE = (
    "run.yaml", "status.json", "events.jsonl", "probes.jsonl", "worker.log")
RUN_LOCK = ".worker.lock"
TRAINING_LOCK = ".training.lock"
STARTUP_GRACE_S = 120  # a queued run whose worker has not taken its lock yet is still starting
EXIT_GRACE_S = 15  # a worker that has recorded how it ended may still be exiting (torchrun tears down its ranks)


class RunError(ValueError):
    """A run operation that cannot be done; the message says why and what to do."""


@dataclass
class Run:
    name: str
    path: Path
    status: Status

    @property
    def state(self) -> str:
        return self.status.state

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def config(self) -> RunConfig:
        return load_config(self.path / RUN_FILE)

    @cached_property
    def _event_lines(self) -> tuple[list[dict], int]:
        read = EventLog(self.path).read()
        kept = [e for e in read if usable_event(e)]
        return kept, len(read) - len(kept)

    @property
    def events(self) -> list[dict]:
        """Read once: like `status`, a snapshot of the run when it was loaded (the Train tab draws
        progress, charts and log from one read of a file that grows with every step). Damaged lines
        are left out."""
        return self._event_lines[0]

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

    @cached_property
    def _probe_lines(self) -> tuple[list[dict], int]:
        read = read_jsonl(self.path / PROBES_FILE)
        kept = [r for r in read if usable_probe(r)]
        return kept, len(read) - len(kept)

    @property
    def probes(self) -> list[dict]:
        return self._probe_lines[0]

    @property
    def damaged_records(self) -> list[str]:
        """Sentences about the lines of events.jsonl and probes.jsonl left out because they are damaged."""
        out = []
        for name, (_, bad) in ((EVENTS_FILE, self._event_lines), (PROBES_FILE, self._probe_lines)):
            if bad:
                out.append(msg("{n} lines of {name} are damaged and left out; the rest of the run is shown." if bad > 1
                               else "{n} line of {name} is damaged and left out; the rest of the run is shown.", n=bad, name=name))
        return out

    @property
    def adapter(self) -> Path | None:
        return self.path / "adapter" if is_adapter(self.path / "adapter") else None

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
        """A line of the run's log; a Message keeps its key and params (engine.train.status.message_fields)."""
        self.write("message", level=level, **message_fields(text))

    def read(self) -> list[dict]:
        return read_jsonl(self.path)


class QuietLog(EventLog):
    """The event log of a follower process (rank > 0): rank 0 alone writes the run's events."""

    def write(self, type: str, **fields) -> None:
        pass

    def read(self) -> list[dict]:
        return []


def read_status(path: Path) -> Status:
    return read_status_file(Path(path) / STATUS_FILE)


def update_status(path: Path, **fields) -> Status:
    """The status with `fields` changed, written atomically (a damaged file is replaced by a whole one)."""
    status = read_status(path).merged(**fields)
    write_json(Path(path) / STATUS_FILE, status.dump())
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
    workspace.runs.mkdir(parents=True, exist_ok=True)
    with open(run_dir / RUN_LOCK, "a+") as own, open(workspace.runs / TRAINING_LOCK, "a+") as training:
        fcntl.flock(own, fcntl.LOCK_EX)
        own.seek(0)
        own.truncate()
        own.write(str(os.getpid()))  # Stop still finds the worker if status.json is damaged
        own.flush()
        try:
            fcntl.flock(training, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            training.seek(0)
            other = training.read().strip() or "another run"
            raise RunError(msg("Another training run, '{other}', is running; only one trains at a time. Stop it "
                               "or wait for it to finish, then resume this one.", other=other)) from None
        training.seek(0)
        training.truncate()
        training.write(run_dir.name if run_dir.parent == workspace.runs.resolve() else str(run_dir))
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
        raise RunError(msg("There is no run named '{name}'.", name=name))
    return _read(path)


def read_run(path: Path) -> Run:
    """The run in a folder anywhere (a headless run need not live in a workspace's runs/)."""
    path = Path(path).resolve()
    if not (path / RUN_FILE).exists():
        raise RunError(msg("'{path}' is not a run folder: it has no {file}.", path=path, file=RUN_FILE))
    return _read(path)


def list_runs(workspace: Workspace) -> list[Run]:
    """Every run, newest first, runs made within one second by when their files were written (a run whose
    status is damaged is listed too, as damaged)."""
    runs, oldest = [_read(p.parent) for p in workspace.runs.glob(f"*/{RUN_FILE}")], datetime.min.replace(tzinfo=timezone.utc)
    return sorted(runs, key=lambda r: (r.status.created or oldest, (r.path / RUN_FILE).stat().st_mtime_ns), reverse=True)


def active_run(workspace: Workspace) -> Run | None:
    """The run that is queued or training now, if any."""
    live = [r for r in list_runs(workspace) if r.live]
    return live[0] if live else None


def _read(path: Path) -> Run:
    status = read_status(path)
    if status.live and not _alive(path, status):
        status = _after_death(path, status)
    elif status.state == "damaged" and _held(path / RUN_LOCK):  # its worker lives and rewrites it as it goes
        pid = (path / RUN_LOCK).read_text().strip()
        status = status.merged(state="running", error=None, advice=None, pid=int(pid) if pid.isdigit() else None)
    return Run(path.name, path, status)


def _alive(path: Path, status: Status) -> bool:
    if _held(path / RUN_LOCK):
        return True
    # A queued worker (also one asked to stop while queued) is still importing its libraries before it
    # takes its lock.
    return (status.state in ("queued", "stopping") and not status.pid and status.queued_at is not None
            and datetime.now(timezone.utc) - status.queued_at < timedelta(seconds=STARTUP_GRACE_S))


def _after_death(path: Path, status: Status) -> Status:
    """The worker is gone while the status says it lives: it was killed or crashed. Record that."""
    if status.state == "stopping":
        return update_status(path, state="stopped", ended=now(), pid=None)
    run = Run(path.name, path, status)
    checkpoint = run.latest_checkpoint
    advice = (msg("Resume continues from the last checkpoint ({name}).", name=checkpoint.name) if checkpoint
              else msg("No checkpoint was saved yet: Duplicate its config into the form and Start it again."))
    try:  # the system kills a process that takes too much memory without warning, so say what would help
        advice = joined([advice, memory_advice(run.config, can_4bit=bool(status.backend and status.backend.device == "cuda"))])
    except ValueError:
        pass
    return update_status(
        path, state="failed", ended=now(), pid=None,
        error=msg("The training process ended unexpectedly (it was killed, or the machine ran out of memory)."), advice=advice,
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
        raise RunError(msg("A run named '{name}' already exists; pick another name.", name=name))
    path.mkdir(parents=True)
    write_text(path / RUN_FILE, config.to_yaml())
    status = update_status(path, state="queued", created=now(), queued_at=now())
    return Run(name, path, status)


def start_run(workspace: Workspace, config: RunConfig, name: str | None = None) -> Run:
    """Create a run folder and start its worker in the background; refused while another run trains,
    and before anything starts where the data set or the model cannot be used."""
    ensure_idle(workspace)
    config = check_sources(workspace, absolute_dataset(config))
    run = create_run(workspace, config, name)
    spawn(run.path, workspace)
    return load_run(workspace, run.name)


def resume_run(workspace: Workspace, name: str, more_epochs: float = 0.0) -> Run:
    """Start the worker again on a stopped, failed or finished run: it continues from its latest
    checkpoint. `more_epochs` extends a run (a finished one needs it to train any further)."""
    run = load_run(workspace, name)
    if run.live:
        raise RunError(msg("'{name}' is still {state}; it cannot be resumed until it ends.", name=name, state=msg(run.state)))
    ensure_idle(workspace)
    config = run.config
    if more_epochs > 0:
        if config.train.max_steps:
            last = run.progress()
            per_epoch = last["step"] / last["epoch"] if last.get("epoch") else 0
            if not per_epoch:
                raise RunError(msg("'{name}' has no finished steps to measure an epoch by; resume it without more epochs.", name=name))
            changes = {"max_steps": config.train.max_steps + max(1, round(more_epochs * per_epoch))}
        else:
            changes = {"epochs": config.train.epochs + more_epochs}
        config = config.model_copy(update={"train": config.train.model_copy(update=changes)})
        write_text(run.path / RUN_FILE, config.to_yaml())
    elif run.state == "completed":
        raise RunError(msg("'{name}' has finished all its steps; choose how many more epochs to train it for.", name=name))
    update_status(run.path, state="queued", queued_at=now(), error=None, advice=None, ended=None)
    spawn(run.path, workspace)
    return load_run(workspace, name)


def stop_run(workspace: Workspace, name: str) -> Run:
    """Ask the worker to stop: it saves a checkpoint and the adapter at the end of the current step."""
    run = load_run(workspace, name)
    if not run.live:
        raise RunError(msg("'{name}' is not running (it is {state}).", name=name, state=msg(run.state)))
    update_status(run.path, state="stopping")
    if run.status.pid:
        try:
            os.kill(run.status.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return load_run(workspace, name)


def delete_run(workspace: Workspace, name: str) -> None:
    run = load_run(workspace, name)
    if run.live:
        raise RunError(msg("'{name}' is {state}; stop it before deleting it.", name=name, state=msg(run.state)))
    shutil.rmtree(run.path)


def rename_run(workspace: Workspace, name: str, new: str) -> Run:
    run = load_run(workspace, name)
    if run.live:
        raise RunError(msg("'{name}' is {state}; stop it before renaming it.", name=name, state=msg(run.state)))
    target = run_dir(workspace, new)
    if target.exists():
        raise RunError(msg("A run named '{new}' already exists; pick another name.", new=new))
    run.path.rename(target)
    return load_run(workspace, new)


def ensure_idle(workspace: Workspace) -> None:
    busy = active_run(workspace)
    if busy is not None:
        raise RunError(msg("'{name}' is {state}; only one run trains at a time. Stop it or wait for it to "
                           "finish first.", name=busy.name, state=msg(busy.state)))
    deadline = time.monotonic() + EXIT_GRACE_S
    while _held(workspace.runs / TRAINING_LOCK) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _held(workspace.runs / TRAINING_LOCK):
        raise RunError(msg("Another training process holds this workspace's training lock; wait for it to finish."))


def spawn(path: Path, workspace: Workspace) -> None:
    """The run's worker in its own process, under torchrun where the run trains on several processes."""
    from engine.train import distributed

    try:
        requested = load_config(path / RUN_FILE).train.processes
    except ValueError:  # the worker itself records what is wrong with the config
        requested = 1
    count = distributed.processes(requested, distributed.visible_gpus())
    with open(path / LOG_FILE, "ab") as log:
        worker = subprocess.Popen(
            distributed.command(path, workspace.root, count),
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
