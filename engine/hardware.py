"""What the machine offers: the device, its memory, and the training/inference backend to use."""

from __future__ import annotations

import gc
import importlib.util
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

import psutil
import torch

from engine.i18n import Message, msg

GiB = 1024**3


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda" | "mps" | "cpu"
    name: str
    bf16: bool
    total_bytes: int
    backend: str  # "unsloth" | "transformers"
    bitsandbytes: bool

    @property
    def can_4bit(self) -> bool:
        return self.device == "cuda" and self.bitsandbytes

    def free_bytes(self) -> int:
        """What a new allocation on this device can use: free GPU memory, else the host's available memory."""
        if self.device == "cuda":
            return torch.cuda.mem_get_info()[0]
        return host_memory().available

    def free_gib(self) -> float:
        """`free_bytes` in GiB, the one unit every screen shows memory in."""
        return self.free_bytes() / GiB

    def summary(self) -> Message:
        return msg("{name} ({device}, {free:.1f} of {total:.1f} GiB free); has fast 16-bit math (bf16); training "
                   "backend: {backend}" if self.bf16 else
                   "{name} ({device}, {free:.1f} of {total:.1f} GiB free); no fast 16-bit math (bf16); training "
                   "backend: {backend}", name=self.name, device=self.device, free=self.free_gib(),
                   total=self.total_bytes / GiB, backend=self.backend)


def host_memory():
    """The host's memory as psutil reads it (`.total`, `.available`: what can be used without swapping)."""
    return psutil.virtual_memory()


def free_memory() -> None:
    """Return the memory of objects just dropped: collect them, and give cached GPU blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _unsloth_imports() -> bool:
    if importlib.util.find_spec("unsloth") is None:
        return False
    try:
        import unsloth  # noqa: F401  (must be imported before transformers to patch it)
    except Exception:
        return False
    return True


@lru_cache(maxsize=1)
def detect() -> Hardware:
    bnb = importlib.util.find_spec("bitsandbytes") is not None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        backend = "unsloth" if _unsloth_imports() else "transformers"
        return Hardware("cuda", props.name, torch.cuda.is_bf16_supported(), props.total_memory, backend, bnb)
    if torch.backends.mps.is_available():
        return Hardware("mps", "Apple GPU (MPS)", True, host_memory().total, "transformers", False)
    cpu = platform.processor() or platform.machine()
    name = msg("CPU {cpu}, {cores} cores", cpu=cpu, cores=os.cpu_count())
    return Hardware("cpu", name, False, host_memory().total, "transformers", False)
