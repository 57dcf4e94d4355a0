"""The tutorial's advice applied to a run config: notes where it strays, and what to change after
running out of memory. Pure config logic, so the run folders can use it without loading torch."""

from __future__ import annotations

from engine.i18n import Message, joined, msg
from engine.train.config import RunConfig

LOSS_RANGE = (0.5, 1.5)  # the tutorial's "keep the loss roughly between 0.5 and 1.5"


def memory_advice(config: RunConfig, can_4bit: bool) -> Message:
    """Concrete changes for a run that ran out of memory (no data or shapes needed)."""
    t, steps = config.train, []
    if t.batch_size > 1:
        steps.append(msg("set the batch size to {batch} and gradient accumulation to {accumulation} (the same "
                         "effective batch)", batch=max(1, t.batch_size // 2), accumulation=t.gradient_accumulation * 2))
    if config.model.max_seq_length > 256:
        steps.append(msg("shorten the maximum length to {length}", length=config.model.max_seq_length // 2))
    if config.lora.gradient_checkpointing != "on":
        steps.append(msg("turn gradient checkpointing on"))
    if can_4bit and not config.model.load_in_4bit:
        steps.append(msg("load the model in 4-bit"))
    if not steps:
        steps.append(msg("choose a smaller model"))
    return msg("To need less memory: {steps}. Then resume the run, or start it again; the plan shows the new "
               "estimate.", steps=joined(steps, "; "))


def advice_notes(config: RunConfig, rows: int) -> list[Message]:
    """Where the config strays from the tutorial's advice; these are suggestions, not errors."""
    lora, t, notes = config.lora, config.train, []
    if lora.alpha not in (lora.r, 2 * lora.r):
        notes.append(msg("alpha is usually r or 2r ({r} or {r2}); it is {alpha}.", r=lora.r, r2=2 * lora.r, alpha=lora.alpha))
    if not 4 <= lora.r <= 64:
        notes.append(msg("rank {r} is unusual; 8-16 is the place to start.", r=lora.r))
    if t.epochs > 10 and not t.max_steps:
        notes.append(msg("{epochs:g} epochs is a lot: past about 10 the model usually over-fits.", epochs=t.epochs))
    if rows and rows < 500 and lora.dropout == 0:
        notes.append(msg("a small data set: dropout 0.05-0.1 helps against over-fitting."))
    if t.learning_rate > 5e-4:
        notes.append(msg("learning rate {rate:g} is high for LoRA; too high makes the model forget.", rate=t.learning_rate))
    return notes
