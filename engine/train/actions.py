"""Which run controls can act now, and why not: one rule for the Train tab's buttons (shown disabled with
the reason) and for its handlers (a direct call is refused with the same sentence). Start always acts:
while a run trains, the new one waits in line."""

from __future__ import annotations

from typing import Literal

from engine.train import line, runs
from engine.workspace import Workspace

Action = Literal["start", "stop", "resume", "rename", "delete"]
ACTIONS: tuple[Action, ...] = ("start", "stop", "resume", "rename", "delete")


def _busy(workspace: Workspace) -> str:
    live = runs.active_run(workspace)
    if live is None:
        return ""
    doing = "stopping" if live.state == "stopping" else "training"
    return f"'{live.name}' is {doing}; stop it or wait for it to finish (one run trains at a time)."


def refusal(workspace: Workspace, action: Action, name: str | None = None) -> str:
    """Why `action` cannot be done now on the run `name` ('' when it can)."""
    if action == "start":
        return ""  # while a run trains, a new one waits in line (engine/train/line.py)
    if not name:
        return "Choose a run first."
    run = runs.load_run(workspace, name)
    if action == "stop":
        if run.state == "stopping":
            return f"'{name}' is already stopping: it saves a checkpoint and the adapter after the current step."
        if run.state == "waiting":
            return ""  # Stop takes it out of the line
        return "" if run.live else f"'{name}' is not running (it is {run.state}), so there is nothing to stop."
    if run.live:
        what = "resumed" if action == "resume" else ("renamed" if action == "rename" else "deleted")
        return f"'{name}' is {run.state}; it can be {what} once it has stopped."
    if action == "resume":
        if run.latest_checkpoint is None:
            return (f"'{name}' has no checkpoint to resume from. Duplicate its config into the form and Start it "
                    "again.")
        return _busy(workspace)
    return ""


def start_note(workspace: Workspace) -> str:
    """What Start does now, where it does not start at once ('' where it does)."""
    live = runs.active_run(workspace)
    if live is None:
        return ""
    place = len(line.waiting(workspace)) + 2
    return (f"'{live.name}' is training: a run started now waits in line at place {place} and starts by itself "
            "when the runs before it end.")


def check(workspace: Workspace, action: Action, name: str | None = None) -> None:
    """Refuse `action` with a RunError saying why, where `refusal` has a reason."""
    reason = refusal(workspace, action, name)
    if reason:
        raise runs.RunError(reason)


def allowed(workspace: Workspace, name: str | None) -> dict[Action, str]:
    """Every control's refusal for the run `name` ('' for the ones that can act)."""
    out: dict[Action, str] = {}
    for action in ACTIONS:
        try:
            out[action] = refusal(workspace, action, name)
        except runs.RunError as e:  # the chosen run was renamed or deleted meanwhile
            out[action] = str(e)
    return out
