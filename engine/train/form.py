"""The Train form's side of a run config: each setting as a control (its kind, choices, label and the
tutorial's advice), a config as the form's values, and the form's values back as a validated config.
The form sends what its controls hold (a number box sends floats, probe prompts are one a line,
0 steps means "use epochs"); this module alone turns that into config values."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from engine.train.config import EMBEDDING_MODULES, LINEAR_MODULES, RunConfig, advice, field, get, put, validate

LINES = "probes.prompts"  # a list of prompts, one a line in a text box
MODULES = "lora.target_modules"  # a set of layer names, ticked from a fixed list
ZERO_IS_NONE = "train.max_steps"  # 0 in the form: use epochs


@dataclass(frozen=True)
class Setting:
    path: str
    label: str
    help: str
    kind: str  # "bool" | "choice" | "int" | "float" | "lines" | "modules"
    choices: tuple = ()


def setting(path: str) -> Setting:
    kind = field(path).annotation
    label = path.split(".")[-1].replace("_", " ").capitalize()
    if path == MODULES:
        return Setting(path, "Target modules", advice(path), "modules", tuple(LINEAR_MODULES + EMBEDDING_MODULES))
    if path == LINES:
        return Setting(path, "Probe prompts (one a line)", advice(path), "lines")
    if path == ZERO_IS_NONE:
        label += " (0 = use epochs)"
    if kind is bool:
        return Setting(path, label, advice(path), "bool")
    if typing.get_origin(kind) is typing.Literal:
        return Setting(path, label, advice(path), "choice", typing.get_args(kind))
    integer = kind is int or int in typing.get_args(kind)
    return Setting(path, label, advice(path), "int" if integer else "float")


def values(config: RunConfig, paths: list[str]) -> list:
    """The form's values for a config, in the order of `paths`."""
    out = []
    for path in paths:
        value = get(config, path)
        if path == LINES:
            value = "\n".join(value)
        elif path == ZERO_IS_NONE:
            value = value or 0
        out.append(value)
    return out


def config_of(model: str, dataset: str, preset: str | None, paths: list[str], form: list) -> RunConfig:
    """The validated config the form describes; a ConfigError (a ValueError) naming each wrong field."""
    dataset = (dataset or "").strip()
    if not dataset:
        raise ValueError("Choose a data set first: a saved one, an example, or the path to a file.")
    changes: dict[str, Any] = {"preset": preset or None, "model.name_or_path": (model or "default").strip(),
                               "dataset": dataset}
    for path, value in zip(paths, form):
        if path == LINES:
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        elif path == ZERO_IS_NONE:
            value = int(value) if value else None
        elif isinstance(value, float) and value.is_integer() and setting(path).kind == "int":
            value = int(value)
        changes[path] = value
    return validate(put({}, changes))
