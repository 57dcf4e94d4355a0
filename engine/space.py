"""Running as a Hugging Face Space: where its persistent storage is, and what to tell the person.

A Space sets SPACE_ID; persistent storage, when added in the Space's settings, is mounted at /data
(WORKBENCH_PERSISTENT_DIR names another place, for tests and other hosts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

NO_STORAGE = ("⚠️ **This Space has no persistent storage:** runs, data sets and exports vanish when it restarts. "
              "Download what you make on the Export tab or push it to the Hugging Face Hub, or add persistent "
              "storage in the Space's settings.")


def on_space(env=os.environ) -> bool:
    return bool(env.get("SPACE_ID"))


def storage(env=os.environ) -> Path | None:
    """The Space's persistent storage, if it has some."""
    if not on_space(env):
        return None
    path = Path(env.get("WORKBENCH_PERSISTENT_DIR", "/data"))
    return path if path.is_dir() and os.access(path, os.W_OK) else None


def prepare(env: MutableMapping[str, str] = os.environ) -> tuple[str, ...]:
    """On a Space, put the workspace and the Hugging Face cache on persistent storage (unless set
    already); call before huggingface_hub is imported, which reads HF_HOME once. The notices to show."""
    if not on_space(env):
        return ()
    root = storage(env)
    if root is None:
        return (NO_STORAGE,)
    env.setdefault("WORKBENCH_HOME", str(root / "workbench"))
    env.setdefault("HF_HOME", str(root / ".huggingface"))
    return ()
