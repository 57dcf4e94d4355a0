"""How many layers recompute their activations, and the batch that goes with it: the plan that fills the card.

Gradient checkpointing keeps only each layer's input and recomputes the layer in backward, which costs
a share of every step (RECOMPUTE_SHARE, measured) and saves most of the activations' memory. With
checkpointing 'auto' on a GPU the plan works out, for each number of checkpointed layers, the largest
batch (in tokens) whose estimate stays within MARGIN of the memory the run may use; each batch then
trains with the fewest checkpointed layers that hold it (the trainer switches them per batch:
engine/train/trainer.py), so padding-free batches of short rows recompute nothing while the largest
batch the data can make still fits. Checkpointing changes no loss or gradient, only memory and time.
Where even every layer does not fit the largest batch, it halves the batch and doubles the
accumulation (the same effective batch). The person overrides it with `lora.checkpointed_layers`
(then every batch checkpoints that many).
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
    settings: Settings  # checkpointed_layers: what the largest batch needs (None: all)
    layers: int  # decoder layers of the model
    batch_size: int
    gradient_accumulation: int
    need_bytes: float  # the memory estimate of the batch that needs the most with this choice
    budget_bytes: float  # the memory the run may use
    chosen: bool  # by the plan (False: the person's setting, kept as it is)
    asked_batch: int
    asked_accumulation: int
    # Per batch (the plan's choice): limits[k] = the most tokens a batch may hold with k layers checkpointed
    # (-1: none); None: every batch checkpoints settings.checkpointed_layers.
    limits: tuple[int, ...] | None = None
    typical_tokens: int = 0  # a batch of average rows
    largest_tokens: int = 0  # the largest batch the data can make

    def layers_for(self, tokens: int) -> int:
        """The checkpointed layers for a batch of this many tokens."""
        if self.limits is None:
            return self.most
        return next((k for k, limit in enumerate(self.limits) if limit >= tokens), self.layers)

    @property
    def most(self) -> int:
        return self.layers if self.settings.checkpointed_layers is None else self.settings.checkpointed_layers

    @property
    def checkpointed(self) -> int:
        """The layers checkpointed on a batch of average rows."""
        return self.layers_for(self.typical_tokens)

    @property
    def gain(self) -> float:
        """Expected speed against checkpointing every layer."""
        return 1 / (1 - RECOMPUTE_SHARE * (self.layers - self.checkpointed) / max(1, self.layers))

    def words(self) -> str:
        k = self.checkpointed
        if k < self.most:
            said = msg("checkpointing {k} of {n} layers on a batch of average rows ({tokens:,} tokens), up to {most} on "
                       "larger ones (the largest: {largest:,}): uses at most about {need:.0f} of {budget:.0f} GiB, "
                       "about {gain:.2f}x the speed of checkpointing all", k=k, n=self.layers,
                       tokens=self.typical_tokens, most=self.most, largest=self.largest_tokens,
                       need=self.need_bytes / GiB, budget=self.budget_bytes / GiB, gain=self.gain)
        else:
            said = msg("checkpointing {k} of {n} layers: uses about {need:.0f} of {budget:.0f} GiB, about {gain:.2f}x "
                       "the speed of checkpointing all", k=k, n=self.layers,
                       need=self.need_bytes / GiB, budget=self.budget_bytes / GiB, gain=self.gain)
        if (self.batch_size, self.gradient_accumulation) != (self.asked_batch, self.asked_accumulation):
            said = msg("{said}; batch {b} with accumulation {a} (the same effective batch)", said=said,
                       b=self.batch_size, a=self.gradient_accumulation)
        return said if self.chosen else msg("{said} (your setting)", said=said)


def typical_batch_tokens(lengths: list[int], config: RunConfig) -> int:
    """The tokens of a batch of average rows (packed batches are all full)."""
    from engine.train.plan import largest_batch_tokens

    largest = largest_batch_tokens(lengths, config)
    if config.train.batching == "packed" or not lengths:
        return largest
    return min(largest, round(config.train.batch_size * sum(lengths) / len(lengths)))


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
           shards: int = 1, per_batch: bool = True) -> Choice:
    """The checkpointed layers and the batch for this run (see the module's docstring); `shards`: the
    processes FSDP splits the model across (plan.sharding), 1 otherwise; with `per_batch` False (several
    processes, whose batches must recompute alike) every batch gets what the largest needs."""
    from engine.train.plan import estimate_memory, largest_batch_tokens

    t, layers = config.train, shape.layers

    def need(k: int | None, changed: RunConfig, tokens: int | None = None) -> float:
        if tokens is None:
            tokens = largest_batch_tokens(cut, changed)
        return estimate_memory(shape, changed, replace(settings, checkpointed_layers=k), tokens, shards).total

    def sized(batch, accumulation):
        return with_changes(config, {"train.batch_size": batch, "train.gradient_accumulation": accumulation})

    def choice(k, batch, accumulation, chosen, limits=None):
        changed = sized(batch, accumulation)
        largest = largest_batch_tokens(cut, changed)
        most = need(k, changed) if limits is None else \
            max(need(j, changed, limit) for j, limit in enumerate(limits) if limit >= 0)
        return Choice(replace(settings, checkpointed_layers=k), layers, batch, accumulation, most, budget_bytes,
                      chosen, t.batch_size, t.gradient_accumulation, limits,
                      typical_batch_tokens(cut, changed), largest)

    cut = [min(n, config.model.max_seq_length) for n in lengths]
    asked = config.lora.checkpointed_layers
    if not settings.gradient_checkpointing or asked is not None or config.lora.gradient_checkpointing != "auto" \
            or settings.device != "cuda":
        k = 0 if not settings.gradient_checkpointing else None if asked is None else min(asked, layers)
        return choice(k, t.batch_size, t.gradient_accumulation, chosen=False)
    room = MARGIN * budget_bytes
    batch, accumulation = t.batch_size, t.gradient_accumulation
    while need(layers, sized(batch, accumulation)) > room:  # not even every layer holds the largest batch
        if batch % 2:  # nothing fits at any batch of the same effective batch: as asked (the plan says so)
            return choice(layers, t.batch_size, t.gradient_accumulation, chosen=True)
        batch, accumulation = batch // 2, accumulation * 2
    # Nothing recomputed even on the largest batch: larger batches, fewer accumulation steps, while they fit.
    while need(0, sized(batch, accumulation)) <= room and accumulation % 2 == 0 \
            and need(0, sized(batch * 2, accumulation // 2)) <= room:
        batch, accumulation = batch * 2, accumulation // 2
    changed = sized(batch, accumulation)
    largest = largest_batch_tokens(cut, changed)
    most = next(k for k in range(layers + 1) if need(k, changed) <= room)
    if not per_batch or most == 0:
        return choice(most, batch, accumulation, chosen=True)

    def limit(k: int) -> int:  # the most tokens within the room with k checkpointed (the estimate grows with them)
        low, high = -1, largest
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if need(k, changed, middle) <= room else (low, middle - 1)
        return low

    return choice(most, batch, accumulation, chosen=True, limits=tuple(limit(k) for k in range(layers + 1)))
