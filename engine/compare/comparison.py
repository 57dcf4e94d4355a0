"""One comparison: a prompt answered by two sides (the base model and a run's adapter, two
checkpoints, or two runs on the same base), or three (e.g. the base, a supervised run and the
preference run tuned from it), with the same sampling preset and the same seed, all at once in one
batch on the one resident model. In blind mode the two answers are shown as A and B in a random
order."""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from engine.compare import sides, store
from engine.files import now
from engine.chat import thinking
from engine.chat.models import ModelError, ModelManager
from engine.chat.sampling import Sampling, preset
from engine.i18n import msg
from engine.workspace import Workspace


@dataclass
class Comparison:
    messages: list[dict]
    left: sides.Side  # what the other is measured against (the base model, usually)
    right: sides.Side
    sampling: Sampling
    preset: str
    blind: bool = False
    source: str = "typed"  # typed | probe | held-out | api
    thinking: bool | None = None  # a thinking model's switch (engine.chat.thinking); None: the template's default
    third: sides.Side | None = None  # a third column, never in blind mode
    shown: tuple[sides.Side, ...] = ()  # the display order: A, B (then the third)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    time: str = field(default_factory=now)
    replies: dict[str, str] = field(default_factory=dict)  # spec -> the answer, its thinking left out
    thoughts: dict[str, str] = field(default_factory=dict)  # spec -> the thinking before the answer, if any
    stats: dict[str, str] = field(default_factory=dict)  # spec -> a line of statistics
    finished: bool = False  # every reply complete (not stopped)
    _adapters: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def sides(self) -> tuple[sides.Side, ...]:
        return (self.left, self.right) + ((self.third,) if self.third else ())

    @property
    def runs(self) -> list[str]:
        return list(dict.fromkeys(s.run for s in self.sides if s.run))

    def reply(self, side: sides.Side) -> str:
        return self.replies.get(side.spec, "")

    def record(self) -> dict:
        return {
            "type": "comparison", "id": self.id, "time": self.time, "source": self.source,
            "messages": self.messages, "sides": [s.spec for s in self.sides],
            "labels": {s.spec: s.label for s in self.sides},
            "preset": self.preset, "sampling": self.sampling.model_dump(), "blind": self.blind,
            "shown": [s.spec for s in self.shown], "replies": self.replies, "stats": self.stats, "runs": self.runs,
            **({"thinking": self.thinking} if self.thinking is not None else {}),
            **({"thoughts": self.thoughts} if any(self.thoughts.values()) else {}),
        }


def sampling_for(preset_name: str, max_new_tokens: int | None = None, seed: int | None = None) -> Sampling:
    """The preset's settings with this length; a seed drawn once when none is given, so both sides
    sample with the same one (greedy decoding needs none)."""
    chosen = preset(preset_name)
    changes: dict = {}
    if max_new_tokens:
        changes["max_new_tokens"] = int(max_new_tokens)
    if seed is not None:
        changes["seed"] = int(seed)
    elif chosen.seed is None and not chosen.greedy:
        changes["seed"] = random.randrange(2**31)
    return Sampling.parse(**{**chosen.model_dump(), **changes})


def prepare(
    manager: ModelManager, workspace: Workspace, messages: list[dict], left: str, right: str, sampling: Sampling,
    preset_name: str, blind: bool = False, source: str = "typed", rng: random.Random | None = None,
    thinking: bool | None = None, third: str | None = None,
) -> Comparison:
    """Check the sides and attach their adapters (before anything is generated), and pick the
    blind order. `third`: a third side shown after the two, where not blind."""
    if manager.loaded is None:
        raise ModelError(msg("No model is loaded. Load one on the Model tab first."))
    if not messages or messages[-1]["role"] != "user" or not str(messages[-1]["content"]).strip():
        raise ModelError(msg("Type a prompt to compare on, or pick one of the run's prompts."))
    a, b = sides.parse(workspace, left), sides.parse(workspace, right)
    if a.spec == b.spec:
        raise ModelError(msg("Both sides are '{label}': pick two different ones (e.g. the base model and a run).", label=a.label))
    c = sides.parse(workspace, third) if third else None
    if c and c.spec in (a.spec, b.spec):
        raise ModelError(msg("The third side is '{label}', which is already compared: pick another one, or none.",
                             label=c.label))
    if c and blind:
        raise ModelError(msg("Blind mode compares two answers: choose no third side, or turn blind mode off."))
    comparison = Comparison(list(messages), a, b, sampling, preset_name, blind, source, thinking, third=c)
    for side in comparison.sides:
        comparison._adapters[side.spec] = sides.activate(manager, side)
    comparison.shown = tuple((rng or random).sample([a, b], 2)) if blind else comparison.sides
    return comparison


def stream(manager: ModelManager, comparison: Comparison,
           cancel: threading.Event | None = None) -> Iterator[tuple[str, ...]]:
    """Answer with every side at once, in one batch, yielding (A's text, B's text[, the third's], a waiting
    line) as they grow; the waiting line says how many requests are ahead at the model while this one
    waits, else ''. A thinking model's thinking is kept apart (`thoughts`): the texts yielded and saved
    are the answers."""
    shown = comparison.shown
    adapters = [comparison._adapters[side.spec] for side in shown]
    for replies in manager.stream_batch([comparison.messages] * len(shown), comparison.sampling, adapters, cancel,
                                        thinking=comparison.thinking):
        for side, reply in zip(shown, replies):
            parts = thinking.split(reply.text)
            comparison.replies[side.spec], comparison.thoughts[side.spec] = parts.answer, parts.thinking
            if reply.stats:
                comparison.stats[side.spec] = reply.stats.summary()
        comparison.finished = all(r.stats and r.stats.finish != "cancelled" for r in replies)
        yield (*(comparison.reply(side) for side in shown), replies[0].notice if replies[0].waiting else "")


def save(workspace: Workspace, comparison: Comparison) -> dict:
    """Store a finished comparison with every run it involves; returns the stored record."""
    record = comparison.record()
    store.save(workspace, comparison.runs, record)
    return record


def compare(
    manager: ModelManager, workspace: Workspace, prompt: str, run: str, preset_name: str = "Precise",
    max_new_tokens: int = 256,
) -> tuple[str, str]:
    """The base model's reply and the run's (a run name, or RUN:checkpoint-N), saved with the run."""
    if not (run or "").strip() or run.strip() == sides.BASE:
        raise ModelError(msg("Name the run to compare with the base model."))
    sampling = sampling_for(preset_name, max_new_tokens)
    comparison = prepare(manager, workspace, [{"role": "user", "content": prompt or ""}], sides.BASE, run.strip(),
                         sampling, preset_name, source="api")
    for _ in stream(manager, comparison):
        pass
    save(workspace, comparison)
    return comparison.reply(comparison.left), comparison.reply(comparison.right)
