"""Prompts to compare on, taken from a run: its probe prompts, and the held-out rows of its data set
(the share `train.eval_split` kept out of training). Also the before-and-after view of the probes:
what the untrained model answered (step 0) beside what the last checkpoint answered."""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.runs import Run
from engine.workspace import Workspace

HELD_OUT_LIMIT = 50


@dataclass(frozen=True)
class Example:
    source: str  # "probe" | "held-out"
    messages: tuple[dict, ...]  # the conversation up to its last user message
    reference: str | None = None  # the data set's reply to it, for held-out rows

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]

    @property
    def context(self) -> int:
        """How many messages come before the prompt (a system prompt, earlier turns)."""
        return len(self.messages) - 1


def probes(run: Run) -> list[Example]:
    return [Example("probe", ({"role": "user", "content": p},)) for p in run.config.probes.prompts]


def held_out(run: Run, workspace: Workspace, limit: int = HELD_OUT_LIMIT) -> list[Example]:
    """The run's held-out conversations, cut before their last reply (which becomes the reference).
    Raises the data engine's DataError when the run's data set is gone."""
    from engine.data import load_conversations
    from engine.train.tokens import split

    config = run.config
    if config.train.eval_split <= 0:
        return []
    _, rows = split(load_conversations(config.dataset, workspace=workspace), config.train)
    found = []
    for row in rows:
        messages = row.get("messages") or []
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last and messages[last - 1]["role"] == "user":
            found.append(Example("held-out", tuple(messages[:last]), messages[last]["content"]))
        if len(found) >= limit:
            break
    return found


def before_after(run: Run) -> tuple[int | None, list[tuple[str, str, str]]]:
    """(the latest step with probe answers, [(prompt, answer before training, answer at that step)])."""
    from engine.train.probes import grid

    headers, rows = grid(run.probes)
    if not rows:
        return None, []
    prompts, by_step = headers[1:], {row[0]: row[1:] for row in rows}
    latest = rows[-1][0]
    blank = [""] * len(prompts)
    before, after = by_step.get(0, blank), by_step[latest] if latest > 0 else blank
    return (latest if latest > 0 else None), list(zip(prompts, before, after))
