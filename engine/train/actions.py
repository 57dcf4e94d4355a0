"""Which run controls can act now, and why not: one rule for the Train tab's buttons (shown disabled with
the reason) and for its handlers (a direct call is refused with the same sentence). Start always acts:
while a run trains, the new one waits in line."""

from __future__ import annotations

from typing import Literal

from engine.i18n import msg
from engine.train import line, runs
from engine.workspace import Workspace

Action = Literal["start", "stop", "resume", "rename", "delete"]
ACTIONS: tuple[Action, ...] = ("start", "stop", "resume", "rename", "delete")


def _busy(workspace: Workspace) -> str:
    live = runs.active_run(workspace)
    if live is None:
        return ""
    return msg("'{name}' is stopping; stop it or wait for it to finish (one run trains at a time)."
               if live.state == "stopping" else
               "'{name}' is training; stop it or wait for it to finish (one run trains at a time).", name=live.name)


def refusal(workspace: Workspace, action: Action, name: str | None = None) -> str:
    """Why `action` cannot be done now on the run `name` ('' when it can)."""
    if action == "start":
        return ""  # while a run trains, a new one waits in line (engine/train/line.py)
    if not name:
        return msg("Choose a run first.")
    run = runs.load_run(workspace, name)
    if action == "stop":
        if run.state == "stopping":
            return msg("'{name}' is already stopping: it saves a checkpoint and the adapter after the "
                       "current step.", name=name)
        if run.state == "waiting":
            return ""  # Stop takes it out of the line
        return "" if run.live else msg("'{name}' is not running (it is {state}), so there is nothing to stop.", name=name, state=msg(run.state))
    if run.live:
        if action == "resume":
            return msg("'{name}' is {state}; it can be resumed once it has stopped.", name=name, state=msg(run.state))
        if action == "rename":
            return msg("'{name}' is {state}; it can be renamed once it has stopped.", name=name, state=msg(run.state))
        return msg("'{name}' is {state}; it can be deleted once it has stopped.", name=name, state=msg(run.state))
    if action == "resume":
        if run.latest_checkpoint is None:
            return (msg("'{name}' has no checkpoint to resume from. Duplicate its config into the form "
                        "and Start it again.", name=name))
        return _busy(workspace)
    return ""


def start_note(workspace: Workspace) -> str:
    """What Start does now, where it does not start at once ('' where it does)."""
    live = runs.active_run(workspace)
    if live is None:
        return ""
    place = len(line.waiting(workspace)) + 2
    return (msg("'{name}' is training: a run started now waits in line at place {place} and starts by "
                "itself when the runs before it end.", name=live.name, place=place))


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
