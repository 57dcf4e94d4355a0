"""The plan's time, known before anything is measured.

The speed comes, best first, from: a measurement or a finished run with the same settings (the worker
records each one's median tokens/s, see plan.record_speed); an earlier run in this workspace on the same
device, the same model first (its step events hold its tokens/s), another model's scaled by the two
models' sizes; else the assumed speed of timing.yaml, said to be an assumption. "Measure speed" then
replaces any of these with this machine's own figure.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import yaml

from engine.i18n import Message, joined, msg
from engine.train.backend import Settings
from engine.train.config import RunConfig
from engine.train.presets import presets
from engine.train.runs import list_runs
from engine.workspace import Workspace

TIMING_FILE = Path(__file__).with_name("timing.yaml")


@dataclass(frozen=True)
class Speed:
    tokens_per_s: float
    source: str  # where the figure comes from, a phrase for the plan's Time line
    measured: bool  # on this machine; False: an assumption, and the plan says so
    peak_memory_gb: float | None = None


@lru_cache(maxsize=1)
def timing() -> dict:
    return yaml.safe_load(TIMING_FILE.read_text(encoding="utf-8"))


def preset_help(name: str) -> str:
    """A preset's help: its summary, and its measured time where timing.yaml records one."""
    summary, measured = presets()[name].summary, (timing().get("presets") or {}).get(name)
    return joined([Message(summary), Message(measured)]) if measured else Message(summary)


def from_runs(workspace: Workspace, config: RunConfig, settings: Settings, parameters: int,
              size_of: Callable[[RunConfig], int]) -> Speed | None:
    """The speed of this workspace's earlier runs on this device: the newest of the same model (one
    with the same batching and batch size first), else the newest of another model, scaled by its size
    (`size_of` counts a config's model parameters)."""
    same, other = [], []
    for run in list_runs(workspace):
        backend = run.status.backend
        rates = [e["tokens_per_s"] for e in run.current("step") if e.get("tokens_per_s")]
        if backend is None or backend.device != settings.device or not rates:
            continue
        try:
            earlier = run.config
        except ValueError:  # an unreadable run.yaml says nothing about speed
            continue
        found = (run.name, earlier, statistics.median(rates))
        (same if earlier.model.name_or_path == config.model.name_or_path else other).append(found)
    if same:
        t = config.train
        alike = [s for s in same if (s[1].train.batching, s[1].train.batch_size) == (t.batching, t.batch_size)]
        name, earlier, rate = (alike or same)[0]
        if alike:
            return Speed(rate, msg("from run {name}: the same model on this machine", name=name), True)
        return Speed(rate, msg("from run {name}: the same model on this machine, batch {batch} {batching}", name=name,
                               batch=earlier.train.batch_size, batching=earlier.train.batching.replace('_', '-')), True)
    for name, earlier, rate in other:
        try:
            theirs = size_of(earlier)
        except (OSError, ValueError):  # that model is gone or unreadable: try an older run
            continue
        return Speed(rate * theirs / parameters, msg("from run {name} of {model} on this machine, scaled by the two "
                                                     "models' sizes", name=name, model=earlier.model.name_or_path), True)
    return None


def assumed(settings: Settings, parameters: int) -> Speed:
    """The speed timing.yaml assumes for this kind of device, scaled to this model's size (and on a CPU to
    this machine's threads)."""
    ref = timing()["assumed"]["cuda" if settings.device == "cuda" else "cpu"]
    rate, scaled = ref["tokens_per_s"] * ref["parameters"] / parameters, msg("this model's size")
    if "threads" in ref:
        import torch

        rate *= torch.get_num_threads() / ref["threads"]
        scaled = msg("this model's size and this machine's threads")
    return Speed(rate, msg("an estimate: no earlier run here to time it by; it assumes the speed of {where}, scaled "
                           "to {scaled}. Measure speed times a few real steps here", where=msg(ref["where"]), scaled=scaled),
                 False)
