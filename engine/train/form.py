"""The Train form's side of a run config: each setting as a control (its kind, choices, label, the
tutorial's advice and why the chosen preset set its value), a config as the form's values, and the
form's values back as a validated config.
The form sends what its controls hold (a number box sends floats, probe prompts are one a line,
0 steps means "use epochs"); this module alone turns that into config values."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from engine.chat import families
from engine.i18n import Message, joined, msg
from engine.train.config import EMBEDDING_MODULES, LINEAR_MODULES, RunConfig, advice, field, flatten, get, put, validate
from engine.train.presets import presets

LINES = "probes.prompts"  # a list of prompts, one a line in a text box
MODULES = "lora.target_modules"  # a set of layer names, ticked from the loaded model's family's list
# Settings whose "none" is 0 in the form, and what 0 means.
ZERO_IS_NONE = {"train.max_steps": msg("(0 = use epochs)"), "train.processes": msg("(0 = every GPU)")}
RUN = "preference.start_from"  # a run's name, or none (the base model)
RUNS = "preference.votes_from"  # run names, picked from the runs


@dataclass(frozen=True)
class Setting:
    path: str
    label: str
    help: str
    kind: str  # "bool" | "choice" | "int" | "float" | "lines" | "modules" | "run" | "runs"
    choices: tuple = ()  # (label, value) pairs for a choice, the layer names for "modules"


def shown(value) -> str:
    """A preset's value as the help quotes it: 3e-4, not 0.0003000; on/off for a switch."""
    if isinstance(value, bool):
        return msg("on") if value else msg("off")
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return f"{value:.1e}".replace(".0e", "e").replace("e-0", "e-")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def preset_note(path: str, preset: str | None) -> str:
    """'Quick test: 2, because …' where the preset sets `path` and says why; the value is the preset's own."""
    chosen = presets().get(preset or "")
    if chosen is None or path not in chosen.why:
        return ""
    value = flatten(chosen.config).get(path)
    if value is None:
        return ""
    return msg("{preset}: {value}, {why}.", preset=Message(chosen.title), value=shown(value), why=Message(chosen.why[path]))


def layer_choices(model_type: str | None, chosen=()) -> tuple[str, ...]:
    """The layers the form offers for a model of this config model_type (None: no model loaded): the
    family's linear layers, the embeddings, then any layer `chosen` names beyond them, so a saved
    config's own layers stay in the form instead of being dropped."""
    offered = families.target_modules(model_type) + EMBEDDING_MODULES
    return tuple(dict.fromkeys([*offered, *chosen]))


def ticked(model_type: str | None, chosen) -> list[str]:
    """The layers ticked for a model of this model_type: where `chosen` holds a family's default layers
    (the defaults the form showed before), this family's own; layers picked by hand stay as picked."""
    linear = {m for m in chosen if m not in EMBEDDING_MODULES}
    defaults = [set(f.target_modules) for f in families.families()] + [set(LINEAR_MODULES)]
    if linear not in defaults:
        return list(chosen)
    return families.target_modules(model_type) + [m for m in chosen if m in EMBEDDING_MODULES]


def setting(path: str, preset: str | None = None, model_type: str | None = None, chosen=()) -> Setting:
    """The control for the setting at `path`: its label and help from the run config's field (title,
    description), then what `preset` chose for it and why. The layers offered are those of a model of
    `model_type` (the loaded model's), and those `chosen` names beyond them."""
    info = field(path)
    kind = info.annotation
    label = info.title or path.split(".")[-1].replace("_", " ").capitalize()
    help = joined(part for part in (Message(advice(path)), preset_note(path, preset)) if part)
    if path == MODULES:
        return Setting(path, label, help, "modules", layer_choices(model_type, chosen))
    if path == LINES:
        return Setting(path, label, help, "lines")
    if path in (RUN, RUNS):
        return Setting(path, label, help, "run" if path == RUN else "runs")
    if path in ZERO_IS_NONE:
        label = joined([Message(label), ZERO_IS_NONE[path]])
    if kind is bool:
        return Setting(path, label, help, "bool")
    if typing.get_origin(kind) is typing.Literal:
        labels = (info.json_schema_extra or {}).get("labels", {})
        return Setting(path, label, help, "choice", tuple((labels.get(v, v), v) for v in typing.get_args(kind)))
    integer = kind is int or int in typing.get_args(kind)
    return Setting(path, label, help, "int" if integer else "float")


def values(config: RunConfig, paths: list[str], model_type: str | None = None) -> list:
    """The form's values for a config, in the order of `paths`; its layers as ticked for a model of
    `model_type`."""
    out = []
    for path in paths:
        value = get(config, path)
        if path == MODULES:
            value = ticked(model_type, value)
        elif path == LINES:
            value = "\n".join(value)
        elif path in ZERO_IS_NONE:
            value = value or 0
        out.append(value)
    return out


def config_of(model: str, dataset: str, preset: str | None, paths: list[str], form: list) -> RunConfig:
    """The validated config the form describes; a ConfigError (a ValueError) naming each wrong field."""
    dataset = (dataset or "").strip()
    if not dataset:
        raise ValueError(msg("Choose a data set first: a saved one, an example, or the path to a file."))
    changes: dict[str, Any] = {"preset": preset or None, "model.name_or_path": (model or "default").strip(),
                               "dataset": dataset}
    for path, value in zip(paths, form):
        if path == LINES:
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        elif path in ZERO_IS_NONE:
            value = int(value) if value else None
        elif path == RUN:
            value = (value or "").strip()
        elif path == RUNS:
            value = [v for v in (value or []) if v]
        elif isinstance(value, float) and value.is_integer() and setting(path).kind == "int":
            value = int(value)
        changes[path] = value
    return validate(put({}, changes))
