"""The export formats, as data: importable without torch, so the command line starts fast."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportFormat:
    name: str
    label: str
    help: str
    floor: float | None = None  # None: answers must be identical; else the least argmax agreement accepted
    disk_per_parameter: float = 0.0  # bytes written (temporary files included) per parameter of the base


EXPORT_FORMATS = {f.name: f for f in (
    ExportFormat("adapter", "LoRA adapter", "The small adapter (peft) with the tokenizer and chat template; loads on top "
           "of the same base model."),
    ExportFormat("merged16", "Merged, 16-bit", "The base with the adapter merged in, as 16-bit safetensors, with the "
           "tokenizer and a generation config holding the chosen sampling preset.", None, 2.0),
    ExportFormat("merged4", "Merged, 4-bit (bitsandbytes)", "Merged, then quantised to 4-bit NF4 with bitsandbytes: "
           "needs an NVIDIA GPU, here and wherever it is loaded.", 0.75, 2.6),
    ExportFormat("gguf-f16", "GGUF f16", "One file for llama.cpp, Ollama or LM Studio, 16-bit, with a Modelfile.",
           None, 6.0),
    ExportFormat("gguf-q8_0", "GGUF q8_0", "8-bit GGUF (half the size of f16, near-identical answers), with a Modelfile.",
           0.95, 5.1),
    ExportFormat("gguf-q4_k_m", "GGUF q4_k_m", "4-bit GGUF (the usual choice for laptops), with a Modelfile; needs "
           "llama-quantize (`make gguf-quantizer`).", 0.75, 6.6),
    ExportFormat("modelfile", "Ollama Modelfile only", "Rewrite the Modelfile beside an existing GGUF export, with "
           "another sampling preset or system prompt."),
)}
GGUF_ORDER = ("gguf-q4_k_m", "gguf-q8_0", "gguf-f16")  # the Modelfile goes beside the first one found
