"""Compare: the base model and a fine-tuned adapter (or two checkpoints, or two runs on the same
base) answering the same prompt on the one resident model, blind votes and their win rates saved
with the run, and the probe prompts' answers before and after training."""

from engine.compare.comparison import Comparison, compare, prepare, sampling_for, save, stream
from engine.compare.sides import BASE, Side

__all__ = ["BASE", "Comparison", "Side", "compare", "prepare", "sampling_for", "save", "stream"]
