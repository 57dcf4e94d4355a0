"""The words of fine-tuning, each explained in one sentence for someone who has never trained a model.

The "Start here" path shows each word's sentence where the word first appears (engine/guide.py says
which step introduces which words)."""

from __future__ import annotations

from engine.i18n import Message, msg

TERMS: dict[str, Message] = {
    "LoRA": msg("LoRA: instead of changing the whole model, training adds a small set of extra weights "
                "beside it, so it fits on an ordinary computer and the original stays untouched."),
    "adapter": msg("Adapter: the small file of extra weights that training produces; loaded on top of the "
                   "original model it gives the new behaviour, and without it the model is as before."),
    "rank": msg("Rank: how big the adapter is; a higher rank can learn more but needs more memory and data."),
    "epoch": msg("Epoch: one pass through every example of your data; two epochs means each example is seen twice."),
    "batch": msg("Batch: how many examples the model looks at before each small correction of its weights."),
    "learning rate": msg("Learning rate: how big each correction is; too high and the model forgets what it "
                         "knew, too low and it learns nothing in time."),
    "loss": msg("Loss: how far the model's replies are from your examples; it should fall during training, "
                "and a value near zero means it is copying them word for word."),
    "checkpoint": msg("Checkpoint: a saved copy of the training so far, so a stopped run can go on from there."),
    "out of memory": msg("Out of memory: the training needs more memory than the machine has free; a smaller "
                         "batch or shorter examples make it fit."),
    "quantisation": msg("Quantisation: storing the weights with fewer bits (8 or 4 instead of 16), so the "
                        "model is smaller and faster, with answers nearly the same."),
    "GGUF": msg("GGUF: a single-file format for models that Ollama, llama.cpp and LM Studio run on any computer."),
}


def explain(*terms: str) -> list[Message]:
    """The sentences of `terms`, in that order; a word the glossary does not hold is a programming error."""
    return [TERMS[term] for term in terms]
