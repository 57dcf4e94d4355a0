"""The line of runs waiting to train: one run trains at a time per workspace; a run started while
another trains waits ("waiting", with its place in the line) and starts when the one before it ends.
The worker that ends starts the next one, so the line moves on even with the app closed."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from typing import Iterator

from engine.files import now
from engine.i18n import msg
from engine.train import runs
from engine.train.config import RunConfig
from engine.train.sources import absolute_dataset, check_sources
from engine.train.status import WAITING
from engine.workspace import Workspace

LINE_LOCK = ".line.lock"


@contextmanager
def _line(workspace: Workspace) -> Iterator[None]:
    """Whoever changes the line holds this lock, so two endings never start two runs."""
    with open(workspace.runs / LINE_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def waiting(workspace: Workspace) -> list[runs.Run]:
    """The runs in line, first come first."""
    return sorted((r for r in runs.list_runs(workspace) if r.state == WAITING),
                  key=lambda r: (r.status.queued_at or r.status.created, r.name))


def place(workspace: Workspace, name: str) -> int:
    """A waiting run's place: 1 trains now, 2 is next, and so on (0: not in line)."""
    names = [r.name for r in waiting(workspace)]
    if name not in names:
        return 0
    return names.index(name) + 1 + (runs.active_run(workspace) is not None)


def join(workspace: Workspace, config: RunConfig, name: str | None = None) -> runs.Run:
    """Start the run now if nothing trains and nothing waits, else put it in line. Where nothing trains
    but runs wait (the worker before them was killed, so it started no one), the first of them starts."""
    with _line(workspace):
        if runs.active_run(workspace) is None:
            if not waiting(workspace):
                return runs.start_run(workspace, config, name)
            _start_first(workspace)
        config = check_sources(workspace, absolute_dataset(config))
        run = runs.create_run(workspace, config, name)
        runs.update_status(run.path, state=WAITING, queued_at=now())
    return runs.load_run(workspace, run.name)


def leave(workspace: Workspace, name: str) -> runs.Run:
    """Take a waiting run out of the line (Stop on a waiting run); it keeps its folder and config."""
    with _line(workspace):
        run = runs.load_run(workspace, name)
        if run.state != WAITING:
            raise runs.RunError(msg("'{name}' is not waiting in line (it is {state}).", name=name, state=msg(run.state)))
        runs.update_status(run.path, state="stopped", ended=now())
    return runs.load_run(workspace, name)


def start_next(workspace: Workspace) -> runs.Run | None:
    """Start the first waiting run if nothing trains now; the started run, or None."""
    with _line(workspace):
        if runs.active_run(workspace) is not None:
            return None
        return _start_first(workspace)


def _start_first(workspace: Workspace) -> runs.Run | None:
    """Start the first run in line (the caller holds the line's lock and knows nothing trains)."""
    line = waiting(workspace)
    if not line:
        return None
    runs.update_status(line[0].path, state="queued", queued_at=now())
    runs.spawn(line[0].path, workspace)
    return runs.load_run(workspace, line[0].name)
