"""The compiled decoding step's cache, kept in the workspace across app starts.

torch.compile's artifacts (inductor's kernels and graphs, autotuning, AOT autograd) for a model shape
are saved with `torch.compiler.save_cache_artifacts` once its step is built, and loaded back with
`load_cache_artifacts` before the next build of the same shape, so that build skips the code
generation; inductor's own on-disk caches point into the same folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def path(cache_dir: Path, model, max_len: int) -> Path:
    """The artifacts file for what the compiled step depends on: the model's config, its weights' format,
    the cache length and torch."""
    config = {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}
    described = json.dumps([config, str(model.dtype), getattr(model, "is_loaded_in_4bit", False), max_len,
                            torch.__version__], sort_keys=True, default=str)
    return Path(cache_dir) / f"{hashlib.sha256(described.encode()).hexdigest()[:16]}.bin"


def reload(artifacts: Path) -> bool:
    """Point inductor's caches into the folder and load the saved artifacts; whether there were any."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(artifacts.parent / "inductor"))
    if not artifacts.is_file():
        return False
    try:
        return torch.compiler.load_cache_artifacts(artifacts.read_bytes()) is not None
    except Exception:  # another torch's cache, or a damaged file: compile anew, and save() replaces it
        log.warning("The compile cache %s could not be read; compiling anew.", artifacts, exc_info=True)
        return False


def save(artifacts: Path) -> None:
    try:
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return
        artifacts.parent.mkdir(parents=True, exist_ok=True)
        tmp = artifacts.with_suffix(".tmp")
        tmp.write_bytes(saved[0])
        tmp.replace(artifacts)
    except Exception:  # the next start compiles anew; replies are not affected
        log.warning("Saving the compile cache %s failed.", artifacts, exc_info=True)
