"""Start a training run from the app: the chat model makes room first (DESIGN.md, decision 3), then
the run's worker starts in its own process, or the run waits in line behind the one training now."""

from __future__ import annotations

from engine.access import require_owner
from engine.chat.models import ModelManager
from engine.i18n import joined, msg
from engine.train import line, runs
from engine.train.config import RunConfig
from engine.train.sources import absolute_dataset, check_sources
from engine.workspace import Workspace


def start(workspace: Workspace, manager: ModelManager, config: RunConfig, name: str | None = None) -> tuple[runs.Run, str]:
    """The started (or waiting) run, and sentences about its place in line and about the chat model
    where it was unloaded to make room ('' if neither)."""
    require_owner("start training")
    check_sources(workspace, absolute_dataset(config))  # refuse before the chat model is touched
    notes = [manager.free_for_training() or ""]
    run = line.join(workspace, config, (name or "").strip() or None)
    if run.state == "waiting":
        ahead = runs.active_run(workspace)
        place = line.place(workspace, run.name)
        notes.insert(0, msg("It waits in line at place {place} and starts by itself when **{ahead}** ends.",
                            place=place, ahead=ahead.name) if ahead else
                     msg("It waits in line at place {place} and starts by itself when the run before it ends.",
                         place=place))
    return run, joined(n for n in notes if n)
