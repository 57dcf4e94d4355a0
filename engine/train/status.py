"""The records of a run folder, typed: `status.json` (one `Status`), and what makes a line of
`events.jsonl` or `probes.jsonl` usable. A record damaged on disk (cut off, emptied, not an object,
wrong types) is read as what it is, damaged, never as an error that breaks a page."""

from __future__ import annotations

import json
import numbers
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from engine.i18n import Message, msg

State = Literal["waiting", "queued", "running", "stopping", "stopped", "completed", "failed", "damaged"]
LIVE = ("queued", "running", "stopping")
WAITING = "waiting"  # in line behind the run that trains now (engine/train/line.py); not live yet


class Backend(BaseModel):
    """What the machine made of the config (engine/train/backend.Settings), as the run recorded it."""

    device: str
    backend: str
    weights_dtype: str | None = None
    mixed_precision: str | None = None
    optimizer: str | None = None
    gradient_checkpointing: bool | None = None


class Status(BaseModel):
    """status.json: where the run stands, written atomically by the app and the worker."""

    model_config = ConfigDict(extra="ignore")

    state: State = "queued"
    pid: int | None = None
    created: AwareDatetime | None = None
    queued_at: AwareDatetime | None = None
    started: AwareDatetime | None = None
    ended: AwareDatetime | None = None
    error: str | None = None  # what went wrong, in a sentence
    advice: str | None = None  # what to do about it
    backend: Backend | None = None
    processes: int = 1  # training processes of the run (torchrun), as the worker recorded them
    # The error's and the advice's message key and params, when they were messages (message_fields)
    error_message: dict | None = None
    advice_message: dict | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def merged(self, **fields) -> "Status":
        for name in ("error", "advice"):
            if name in fields:
                value = fields[name]
                fields[f"{name}_message"] = _dumped(value) if isinstance(value, Message) else None
        return Status.model_validate({**self.model_dump(), **fields})

    def said(self, name: str) -> str | None:
        """The `error` or `advice` as the Message it was recorded from, to be rendered in the viewer's
        language; its text alone where it was none (or was recorded by an older version)."""
        text = getattr(self, name)
        return None if text is None else event_message({"text": text, **(getattr(self, f"{name}_message") or {})})

    def dump(self) -> dict:
        return self.model_dump(mode="json")


def read(path: Path) -> Status:
    """The status in `path` (a status.json); a missing file is a queued run, a damaged one is `damaged`
    with what to do about it."""
    path = Path(path)
    try:
        return Status.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return Status()
    except (ValueError, ValidationError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        pass
    made = path.parent.joinpath("run.yaml")
    created = datetime.fromtimestamp(made.stat().st_mtime, timezone.utc) if made.exists() else None
    return Status().merged(state="damaged", created=created, error=msg("This run's {name} is damaged, so its state is unknown.", name=path.name),
                  advice=msg("Resume it to rewrite the file (training continues from its latest "
                             "checkpoint, if it has one), or Delete the run."))


def usable_event(e: dict) -> bool:
    """Whether a line of events.jsonl holds what its readers take from it; others are left out."""
    kind, step = e.get("type"), e.get("step")
    if kind in ("start", "step", "eval") and not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        return False
    number = (int, float)
    if kind == "step":
        return (all(isinstance(e.get(k), number) for k in ("loss", "max_steps", "epoch", "memory_gb", "peak_memory_gb"))
                and isinstance(e.get("learning_rate"), (*number, type(None))))
    if kind == "eval":
        return isinstance(e.get("eval_loss"), number)
    if kind == "message":
        return isinstance(e.get("text"), str)
    return isinstance(kind, str)


def message_fields(text: str) -> dict:
    """A log line's fields in events.jsonl: its English `text` (what older readers and the files show),
    and for a Message its `key` and `params` too, so the Train tab renders it in the viewer's language."""
    fields = {"text": str(text)}
    if isinstance(text, Message):
        fields.update(_dumped(text))
    return fields


def _dumped(value):
    """A Message as {"key", "params"} (a parameter that is a Message, nested the same way); a number stays
    a number for the template's formats, anything else becomes its text."""
    if isinstance(value, Message):
        return {"key": value.template, "params": {k: _dumped(v) for k, v in value.params.items()}}
    if isinstance(value, (bool, type(None))):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def _loaded(value):
    if isinstance(value, dict):
        return Message(value["key"], **{k: _loaded(v) for k, v in value["params"].items()})
    return value


def event_message(e: dict) -> str:
    """A record's message (a `message` event's line, a status's error): the Message it was written from,
    or its text alone (written before messages kept their key, or with its key and params damaged)."""
    if isinstance(e.get("key"), str) and isinstance(e.get("params"), dict):
        try:
            return _loaded({"key": e["key"], "params": e["params"]})
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            pass
    return e["text"]


def usable_probe(r: dict) -> bool:
    """Whether a line of probes.jsonl is a step's answers to its prompts."""
    step, prompts, answers = r.get("step"), r.get("prompts"), r.get("answers")
    return (isinstance(step, int) and not isinstance(step, bool) and isinstance(prompts, list)
            and isinstance(answers, list) and all(isinstance(x, str) for x in prompts + answers))
