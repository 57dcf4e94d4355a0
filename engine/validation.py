"""pydantic's validation errors said as sentences a person can act on: the field by its dotted name,
what is wrong with it, and the value given. Every record and config of the app reports through here."""

from __future__ import annotations

from typing import Callable

from pydantic import ValidationError


def sentence(err: dict, hint: Callable[[str], str] | None = None) -> str:
    """One error of `ValidationError.errors()` as a sentence; `hint(field)` adds advice to a missing field."""
    field = ".".join(str(p) for p in err["loc"]) or "value"
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return f"'{field}' is missing. {hint(field) if hint else ''}".strip()
    if kind == "extra_forbidden":
        return f"'{field}' is not a setting; check its spelling or remove it."
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    msg = msg.replace("Input should be", "should be").replace("Input", "the value")
    return f"'{field}' {msg[0].lower() + msg[1:]} (you gave {err.get('input')!r:.80})."


def sentences(error: ValidationError, hint: Callable[[str], str] | None = None) -> str:
    """Every error of `error`, a sentence a line."""
    return "\n".join(sentence(err, hint) for err in error.errors())
