"""What answers a prompt: the base model with its adapter switched off, or a run's adapter (the
final one or a checkpoint). A side is named by a spec: "base", "RUN" (its final adapter) or
"RUN:checkpoint-N" (run names cannot hold ':'). Adapters are attached to the one resident base
model; choosing a side never loads a second copy of it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from engine.models import ModelError, ModelManager
from engine.train.runs import Run, list_runs, load_run
from engine.workspace import Workspace

BASE = "base"
BASE_LABEL = "Base model (adapter off)"


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


def _has_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").exists()


def of_run(run: Run) -> list[Side]:
    """A run's final adapter, then its checkpoints, newest first."""
    found = [Side(run.name, label_of(run.name), run.name, run.adapter)] if run.adapter else []
    for checkpoint in reversed(run.checkpoints):
        if _has_adapter(checkpoint):
            spec = f"{run.name}:{checkpoint.name}"
            found.append(Side(spec, label_of(spec), run.name, checkpoint))
    return found


def label_of(spec: str) -> str:
    """A side's label from its spec alone (for records of sides that may no longer exist)."""
    if spec == BASE:
        return BASE_LABEL
    name, _, checkpoint = spec.partition(":")
    return f"{name} · {checkpoint or 'final adapter'}"


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
        raise ModelError(f"The run '{name}' has no adapter yet (it is {run.state}): it saves one at each checkpoint "
                         "and when training ends. Wait for its first checkpoint, or pick another run.")
    if checkpoint:
        raise ModelError(f"The run '{name}' has no checkpoint '{checkpoint}'. Its adapters: "
                         f"{', '.join(s.spec for s in sides)}.")
    raise ModelError(f"The run '{name}' has no final adapter yet (it is {run.state}); pick one of its checkpoints: "
                     f"{', '.join(s.spec for s in sides)}.")


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
        raise ModelError("No model is loaded. Load one on the Model tab first.")
    if side.is_base:
        return None
    name = adapter_name(side)
    if name not in loaded.adapters:
        check_fits(loaded, side)
        previous = loaded.active_adapter
        manager.attach_adapter(name, side.path)
        manager.use_adapter(previous)
    return name


def check_fits(loaded, side: Side) -> None:
    """Compare the adapter's weight shapes with the loaded model's layers before attaching, so an
    adapter trained on another base is refused with the model left exactly as it was."""
    from safetensors import safe_open

    weights = side.path / "adapter_model.safetensors"
    if not weights.exists():
        return  # an older .bin adapter: attach_adapter's own check reports a mismatch
    model = loaded.model.get_base_model() if hasattr(loaded.model, "get_base_model") else loaded.model
    with safe_open(weights, "pt") as f:
        for key in f.keys():
            problem = _mismatch(model, key, tuple(f.get_slice(key).get_shape()))
            if problem:
                raise ModelError(
                    f"'{side.label}' does not fit the loaded model ({loaded.summary()}): {problem}. It was trained "
                    f"on {_trained_on(side)}; load that model on the Model tab first. Nothing was changed."
                )


def _mismatch(model, key: str, shape: tuple[int, ...]) -> str | None:
    path = key.removeprefix("base_model.model.")
    match = re.match(r"(.+)\.lora_(A|B|embedding_A|embedding_B)(\.weight)?$", path)
    if not match:  # a fully trained layer (modules_to_save, e.g. embed_tokens): compare whole shapes
        try:
            param = model.get_parameter(path)
        except AttributeError:
            return None
        if param.is_floating_point() and tuple(param.shape) != shape:
            return f"its layer {path} has shape {list(shape)}, the model's has {list(param.shape)}"
        return None
    module_path, part = match.group(1), match.group(2)
    try:
        module = model.get_submodule(module_path)
    except AttributeError:
        return f"it changes a layer the model does not have ({module_path})"
    module = getattr(module, "base_layer", module)
    if part in ("A", "B"):
        size_in, size_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if part == "A" and size_in is not None and shape[-1] != size_in:
            return f"its layer {module_path} takes {shape[-1]} inputs, the model's takes {size_in}"
        if part == "B" and size_out is not None and shape[0] != size_out:
            return f"its layer {module_path} gives {shape[0]} outputs, the model's gives {size_out}"
    else:
        rows, width = getattr(module, "num_embeddings", None), getattr(module, "embedding_dim", None)
        if part == "embedding_A" and rows is not None and shape[-1] != rows:
            return f"its embedding {module_path} has {shape[-1]} tokens, the model's has {rows}"
        if part == "embedding_B" and width is not None and shape[0] != width:
            return f"its embedding {module_path} is {shape[0]} wide, the model's is {width}"
    return None


def _trained_on(side: Side) -> str:
    try:
        base = json.loads((side.path / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        base = None
    return f"'{base}'" if base else "another base model"
