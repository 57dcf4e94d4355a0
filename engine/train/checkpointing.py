"""How many layers recompute their activations, and the batch that goes with it: the plan that fills the card.

Gradient checkpointing keeps only each layer's input and recomputes the layer in backward, which costs
a share of every step (RECOMPUTE_SHARE, measured) and saves most of the activations' memory. With
checkpointing 'auto' on a GPU the run checkpoints the fewest layers whose estimate stays within
MARGIN of the memory it may use, at the person's batch; where even every layer does not fit, it
halves the batch and doubles the accumulation (the same effective batch). The person overrides it
with `lora.checkpointed_layers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from engine.hardware import GiB
from engine.i18n import msg
from engine.train.backend import Settings
from engine.train.config import RunConfig, with_changes

MARGIN = 0.8  # of the memory the run may use: the plan's "fits" (plan.verdict)
# With every layer checkpointed, recomputing them took this share of a step: the 8B shape in 4-bit on
# an H200 trained 1.37x faster with checkpointing off (bench/RESULTS.md, train-6).
RECOMPUTE_SHARE = 0.27
CAP_ENV = "WORKBENCH_GPU_MEMORY_GIB"  # run as if the GPU had only this much memory (a shared or smaller card)


@dataclass(frozen=True)
class Choice:
    settings: Settings  # with checkpointed_layers set
    layers: int  # decoder layers of the model
    batch_size: int
    gradient_accumulation: int
    need_bytes: float  # the memory estimate of the largest batch with this choice
    budget_bytes: float  # the memory the run may use
    chosen: bool  # by the plan (False: the person's setting, kept as it is)
    asked_batch: int
    asked_accumulation: int

    @property
    def checkpointed(self) -> int:
        return self.layers if self.settings.checkpointed_layers is None else self.settings.checkpointed_layers

    @property
    def gain(self) -> float:
        """Expected speed against checkpointing every layer."""
        return 1 / (1 - RECOMPUTE_SHARE * (self.layers - self.checkpointed) / max(1, self.layers))

    def words(self) -> str:
        said = msg("checkpointing {k} of {n} layers: uses about {need:.0f} of {budget:.0f} GiB, about {gain:.2f}x "
                   "the speed of checkpointing all", k=self.checkpointed, n=self.layers,
                   need=self.need_bytes / GiB, budget=self.budget_bytes / GiB, gain=self.gain)
        if (self.batch_size, self.gradient_accumulation) != (self.asked_batch, self.asked_accumulation):
            said = msg("{said}; batch {b} with accumulation {a} (the same effective batch)", said=said,
                       b=self.batch_size, a=self.gradient_accumulation)
        return said if self.chosen else msg("{said} (your setting)", said=said)


def memory_cap() -> int | None:
    """The cap set in WORKBENCH_GPU_MEMORY_GIB, in bytes, or None."""
    value = os.environ.get(CAP_ENV, "").strip()
    try:
        return int(float(value) * GiB) if value else None
    except ValueError:
        return None


def budget(free_bytes: int) -> int:
    cap = memory_cap()
    return min(free_bytes, cap) if cap else free_bytes


def choose(config: RunConfig, settings: Settings, shape, lengths: list[int], budget_bytes: float,
           shards: int = 1) -> Choice:
    """The checkpointed layers and the batch for this run (see the module's docstring); `shards`: the
    processes FSDP splits the model across (plan.sharding), 1 otherwise."""
    from engine.train.plan import estimate_memory, largest_batch_tokens

    t, layers = config.train, shape.layers

    def need(k: int | None, changed: RunConfig) -> float:
        tokens = largest_batch_tokens([min(n, changed.model.max_seq_length) for n in lengths], changed)
        return estimate_memory(shape, changed, replace(settings, checkpointed_layers=k), tokens, shards).total

    def choice(k, batch, accumulation, chosen):
        changed = with_changes(config, {"train.batch_size": batch, "train.gradient_accumulation": accumulation})
        return Choice(replace(settings, checkpointed_layers=k), layers, batch, accumulation, need(k, changed),
                      budget_bytes, chosen, t.batch_size, t.gradient_accumulation)

    asked = config.lora.checkpointed_layers
    if not settings.gradient_checkpointing or asked is not None or config.lora.gradient_checkpointing != "auto" \
            or settings.device != "cuda":
        k = 0 if not settings.gradient_checkpointing else None if asked is None else min(asked, layers)
        return choice(k, t.batch_size, t.gradient_accumulation, chosen=False)
    batch, accumulation = t.batch_size, t.gradient_accumulation
    while True:
        changed = with_changes(config, {"train.batch_size": batch, "train.gradient_accumulation": accumulation})
        fits = [k for k in range(layers + 1) if need(k, changed) <= MARGIN * budget_bytes]
        if fits and fits[0] == 0:  # nothing recomputed: larger batches, fewer accumulation steps, while they fit
            while accumulation % 2 == 0 and need(0, with_changes(changed, {
                    "train.batch_size": batch * 2, "train.gradient_accumulation": accumulation // 2})) \
                    <= MARGIN * budget_bytes:
                batch, accumulation = batch * 2, accumulation // 2
                changed = with_changes(changed, {"train.batch_size": batch, "train.gradient_accumulation": accumulation})
        if fits:
            return choice(fits[0], batch, accumulation, chosen=True)
        if batch % 2:  # nothing fits at any batch of the same effective batch: as asked (the plan says so)
            return choice(layers, t.batch_size, t.gradient_accumulation, chosen=True)
        batch, accumulation = batch // 2, accumulation * 2
