"""Start a training run from the app: the chat model makes room first (DESIGN.md, decision 3), then
the run's worker starts in its own process."""

from __future__ import annotations

from engine.access import require_owner
from engine.chat.models import ModelManager
from engine.train import runs
from engine.train.config import RunConfig
from engine.train.sources import absolute_dataset, check_sources
from engine.workspace import Workspace


def start(workspace: Workspace, manager: ModelManager, config: RunConfig, name: str | None = None) -> tuple[runs.Run, str]:
    """The started run, and a sentence about the chat model where it was unloaded to make room ('' if not)."""
    require_owner("start training")
    runs.ensure_idle(workspace)  # refuse before the chat model is touched
    check_sources(workspace, absolute_dataset(config))
    note = manager.free_for_training() or ""
    return runs.start_run(workspace, config, (name or "").strip() or None), note
