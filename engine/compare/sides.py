"""What answers a prompt: the base model with its adapter switched off, or a run's adapter (the
final one or a checkpoint). A side is named by a spec: "base", "RUN" (its final adapter) or
"RUN:checkpoint-N" (run names cannot hold ':'). Adapters are attached to the one resident base
model; choosing a side never loads a second copy of it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.adapters import is_adapter
from engine.chat.models import ModelError, ModelManager
from engine.i18n import msg
from engine.train.runs import Run, list_runs, load_run
from engine.workspace import Workspace

BASE = "base"
BASE_LABEL = msg("Base model (adapter off)")


@dataclass(frozen=True)
class Side:
    spec: str
    label: str
    run: str | None = None
    path: Path | None = None  # the adapter folder; None for the base model

    @property
    def is_base(self) -> bool:
        return self.path is None


BASE_SIDE = Side(BASE, BASE_LABEL)


def of_run(run: Run) -> list[Side]:
    """A run's final adapter, then its checkpoints, newest first."""
    found = [Side(run.name, label_of(run.name), run.name, run.adapter)] if run.adapter else []
    for checkpoint in reversed(run.checkpoints):
        if is_adapter(checkpoint):
            spec = f"{run.name}:{checkpoint.name}"
            found.append(Side(spec, label_of(spec), run.name, checkpoint))
    return found


def label_of(spec: str) -> str:
    """A side's label from its spec alone (for records of sides that may no longer exist)."""
    if spec == BASE:
        return BASE_LABEL
    name, _, checkpoint = spec.partition(":")
    return f"{name} · {checkpoint}" if checkpoint else msg("{name} · final adapter", name=name)


def available(workspace: Workspace) -> list[Side]:
    """The base model and every adapter of every run, newest run first."""
    return [BASE_SIDE, *(side for run in list_runs(workspace) for side in of_run(run))]


def parse(workspace: Workspace, spec: str) -> Side:
    """The side a spec names; a plain-English ValueError when there is no such run or adapter."""
    spec = (spec or BASE).strip()
    if spec in (BASE, BASE_LABEL):
        return BASE_SIDE
    name, _, checkpoint = spec.partition(":")
    run = load_run(workspace, name)
    sides = of_run(run)
    for side in sides:
        if side.spec == spec:
            return side
    if not sides:
        raise ModelError(msg("The run '{name}' has no adapter yet (it is {state}): it saves one at each "
                             "checkpoint and when training ends. Wait for its first checkpoint, or pick another "
                             "run.", name=name, state=msg(run.state)))
    if checkpoint:
        raise ModelError(msg("The run '{name}' has no checkpoint '{checkpoint}'. Its adapters: {sides}.", name=name, checkpoint=checkpoint, sides=', '.join(s.spec for s in sides)))
    raise ModelError(msg("The run '{name}' has no final adapter yet (it is {state}); pick one of its checkpoints: "
                         "{sides}.", name=name, state=msg(run.state), sides=', '.join(s.spec for s in sides)))


def adapter_name(side: Side) -> str:
    """The adapter's name on the resident model: readable, and new whenever the adapter's files
    change (a resumed run saves a new adapter into the same folder)."""
    weights = sorted(side.path.glob("adapter_model.*"))
    stamp = "".join(f"{p.name}{p.stat().st_mtime_ns}{p.stat().st_size}" for p in weights)
    digest = hashlib.sha1(f"{side.path.resolve()}|{stamp}".encode()).hexdigest()[:8]
    return f"{side.spec[:48]}@{digest}"


def activate(manager: ModelManager, side: Side) -> str | None:
    """Attach the side's adapter to the resident base if it is not attached yet; return the name to
    pass to `manager.stream` (None: the base with its adapters switched off). Attaching does not
    change the adapter other sessions answer with."""
    loaded = manager.loaded
    if loaded is None:
        raise ModelError(msg("No model is loaded. Load one on the Model tab first."))
    if side.is_base:
        return None
    name = adapter_name(side)
    if name not in loaded.adapters:
        previous = loaded.active_adapter
        manager.attach_adapter(name, side.path, label=side.label)
        manager.use_adapter(previous)
    return name
