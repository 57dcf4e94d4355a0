"""pydantic's validation errors said as sentences a person can act on: the field by its dotted name,
what is wrong with it, and the value given. Every record and config of the app reports through here."""

from __future__ import annotations

from typing import Callable

from pydantic import ValidationError

from engine.i18n import Message, joined, msg

# pydantic's commonest errors as whole sentences (the rest keep pydantic's English words)
_KNOWN = {
    "greater_than": "'{field}' should be greater than {gt} (you gave {given}).",
    "greater_than_equal": "'{field}' should be greater than or equal to {ge} (you gave {given}).",
    "less_than": "'{field}' should be less than {lt} (you gave {given}).",
    "less_than_equal": "'{field}' should be less than or equal to {le} (you gave {given}).",
    "literal_error": "'{field}' should be {expected} (you gave {given}).",
    "int_parsing": "'{field}' should be a valid integer, unable to parse string as an integer (you gave {given}).",
    "int_type": "'{field}' should be a valid integer (you gave {given}).",
    "int_from_float": "'{field}' should be a valid integer, got a number with a fractional part (you gave {given}).",
    "float_parsing": "'{field}' should be a valid number, unable to parse string as a number (you gave {given}).",
    "float_type": "'{field}' should be a valid number (you gave {given}).",
    "bool_parsing": "'{field}' should be a valid boolean, unable to interpret the value (you gave {given}).",
    "bool_type": "'{field}' should be a valid boolean (you gave {given}).",
    "string_type": "'{field}' should be a valid string (you gave {given}).",
    "string_too_short": "'{field}' should have at least {min_length} characters (you gave {given}).",
    "dict_type": "'{field}' should be a valid dictionary (you gave {given}).",
    "list_type": "'{field}' should be a valid list (you gave {given}).",
}


def sentence(err: dict, hint: Callable[[str], str] | None = None) -> Message:
    """One error of `ValidationError.errors()` as a sentence; `hint(field)` adds advice to a missing field."""
    field = ".".join(str(p) for p in err["loc"]) or "value"
    kind, text = err["type"], err["msg"]
    if kind == "missing":
        advice = hint(field) if hint else ""
        return msg("'{field}' is missing. {hint}", field=field, hint=msg(advice)) if advice else \
            msg("'{field}' is missing.", field=field)
    if kind == "extra_forbidden":
        return msg("'{field}' is not a setting; check its spelling or remove it.", field=field)
    if kind == "value_error":
        raised = (err.get("ctx") or {}).get("error")
        if raised is not None and isinstance(raised.args[0] if raised.args else None, Message):
            return raised.args[0]
        return msg(text.removeprefix("Value error, "))
    text = text.replace("Input should be", "should be").replace("Input", "the value")
    given = f"{err.get('input')!r:.80}"
    said = msg("'{field}' {problem} (you gave {given}).", field=field, problem=text[0].lower() + text[1:], given=given)
    if kind in _KNOWN:
        typed = msg(_KNOWN[kind], field=field, given=given, **(err.get("ctx") or {}))
        if typed == said:  # the same English: the whole sentence translates
            return typed
    return said


def sentences(error: ValidationError, hint: Callable[[str], str] | None = None) -> Message:
    """Every error of `error`, a sentence a line."""
    return joined((sentence(err, hint) for err in error.errors()), "\n")
