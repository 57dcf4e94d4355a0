"""What the machine offers: the device, its memory, and the training/inference backend to use."""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

import torch

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
        if self.device == "cuda":
            return torch.cuda.mem_get_info()[0]
        return _available_host_bytes()

    def summary(self) -> str:
        gib = f"{self.free_bytes() / GiB:.1f} of {self.total_bytes / GiB:.1f} GiB free"
        return f"{self.name} ({self.device}, {gib}, bf16 {'yes' if self.bf16 else 'no'}); training backend: {self.backend}"


def _available_host_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _host_total_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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
        return Hardware("mps", "Apple GPU (MPS)", True, _host_total_bytes(), "transformers", False)
    cpu = platform.processor() or platform.machine()
    name = f"CPU {cpu}, {os.cpu_count()} cores"
    return Hardware("cpu", name, False, _host_total_bytes(), "transformers", False)
