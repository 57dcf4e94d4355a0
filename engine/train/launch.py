"""Start a training run from the app: the chat model makes room first (DESIGN.md, decision 3), then
the run's worker starts in its own process."""

from __future__ import annotations

from engine.models import ModelManager
from engine.train import runs
from engine.train.config import RunConfig
from engine.workspace import Workspace


def start(workspace: Workspace, manager: ModelManager, config: RunConfig, name: str | None = None) -> tuple[runs.Run, str]:
    """The started run, and a sentence about the chat model where it was unloaded to make room ('' if not)."""
    runs.ensure_idle(workspace)  # refuse before the chat model is touched
    note = ""
    if manager.loaded is not None and manager.hardware.device == "cuda":
        manager.unload()  # the GPU memory goes to training
        note = "The chat model was unloaded to give training the GPU's memory; load it again on the Model tab to chat."
    return runs.start_run(workspace, config, (name or "").strip() or None), note
