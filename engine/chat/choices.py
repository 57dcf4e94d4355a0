"""Chat regenerations the person judged: after Regenerate the Chat tab keeps the earlier reply aside and
asks which of the two replies is better. Each answer is saved in the workspace as `chat-choices.jsonl`,
one trl conversational preference record a line (`prompt`: the conversation so far as the model received
it, its system prompt with the lorebook entries that joined it included; `chosen`; `rejected`) with the
side (base model or adapter) that wrote each reply. Preference tuning reads them as the "chat choices"
source (engine.train.pairs)."""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.access import require_owner
from engine.files import append_jsonl, now, read_jsonl
from engine.i18n import msg
from engine.workspace import Workspace, inside

CHOICES_FILE = "chat-choices.jsonl"

_write = threading.Lock()  # appends from several browser sessions never interleave


class ChoiceError(ValueError):
    """A choice that cannot be saved as a pair; the message says why."""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str


class ChoiceRecord(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields a later version adds are kept
    time: str
    prompt: list[Message] = Field(min_length=1)
    chosen: list[Message] = Field(min_length=1, max_length=1)
    rejected: list[Message] = Field(min_length=1, max_length=1)
    sides: dict[str, str] = {}  # "chosen" / "rejected": the side that wrote that reply


def path(workspace: Workspace) -> Path:
    return inside(workspace.root, CHOICES_FILE)


def save(workspace: Workspace, prompt: list[dict], chosen: str, rejected: str, chosen_side: str,
         rejected_side: str) -> dict:
    """Record that `chosen` answers the conversation `prompt` (ending with the person's message) better
    than `rejected`; the record saved. The owner's alone: the replies' text comes from the page, and what is
    saved here trains the owner's preference runs."""
    require_owner("save a chat choice")
    if not prompt or prompt[-1].get("role") != "user":
        raise ChoiceError(msg("A chat choice needs the conversation it answers, ending with your message."))
    if not chosen.strip() or not rejected.strip():
        raise ChoiceError(msg("Both replies need some text to be saved as a preference pair."))
    if chosen.strip() == rejected.strip():
        raise ChoiceError(msg("The two replies are the same, so neither is better: nothing was saved."))
    record = ChoiceRecord(
        time=now(), prompt=[Message(role=m["role"], content=m["content"]) for m in prompt],
        chosen=[Message(role="assistant", content=chosen)], rejected=[Message(role="assistant", content=rejected)],
        sides={"chosen": chosen_side, "rejected": rejected_side},
    ).model_dump(mode="json")
    with _write:
        append_jsonl(path(workspace), record)
    return record


def records(workspace: Workspace) -> list[dict]:
    """The saved choices that have a choice's shape, oldest first (a damaged line is left out)."""
    found = []
    for raw in read_jsonl(path(workspace)):
        try:
            found.append(ChoiceRecord.model_validate(raw).model_dump(mode="json"))
        except ValidationError:
            continue
    return found
