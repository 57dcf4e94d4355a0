"""Training presets, read from presets.yaml beside this file (DESIGN.md, decision 8: presets are data)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from engine.i18n import msg
from engine.train.config import ConfigError, RunConfig, flatten, put, validate

PRESETS_FILE = Path(__file__).with_name("presets.yaml")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str  # title, summary and why are English; engine/locales/zh-CN.yaml holds their Chinese
    summary: str
    config: dict[str, Any]
    why: dict[str, str]  # by dotted path: why the preset chose its value (help text)


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    data = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    return {name: Preset(name, p["title"], p["summary"], p["config"], p.get("why", {})) for name, p in data.items()}


def build(preset: str, dataset: str, model: str = "default", **sections: dict[str, Any]) -> RunConfig:
    """A validated config: the preset's values, then the model and data set, then any section overrides
    such as train={"epochs": 1}."""
    if preset not in presets():
        raise ConfigError(msg("There is no preset '{preset}'; choose one of: {names}.", preset=preset, names=", ".join(presets())))
    changes = {"preset": preset, "model.name_or_path": model, "dataset": dataset, **flatten(sections)}
    return validate(put(presets()[preset].config, changes))
