"""The small pieces every record shape's conversion shares: speaker names to roles, message content
to text, a column's list of turns, and the exception for a record that does not fit its shape."""

from __future__ import annotations

import json

from engine.i18n import msg

ROLES = {
    "user": "user", "human": "user", "prompter": "user", "question": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
    "claude": "assistant", "bard": "assistant", "answer": "assistant", "chatbot": "assistant",
    "system": "system", "developer": "system",
    "tool": "tool", "function": "tool", "observation": "tool", "ipython": "tool", "function_response": "tool",
    "tool_response": "tool",
}
IMAGE_PARTS = ("image", "image_url", "input_image", "video", "audio", "input_audio", "inlinedata", "filedata")
IMAGE_MARK = "<image content part>"  # what an image part reads as, so the row is found to hold one (never trained)


class Malformed(Exception):
    """A record that does not fit the chosen shape; it is dropped with this message and reason
    (a key of `rules.REASONS`)."""

    def __init__(self, message: str, reason: str = "malformed"):
        super().__init__(message)
        self.reason = reason


def as_list(value):
    """A list, also from a JSON string (CSV cells hold lists as text); None otherwise."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    return list(value) if isinstance(value, (list, tuple)) else None


def content_text(content) -> str:
    """Message content as text: strings as they are, content parts joined (an image part as
    `IMAGE_MARK`), nothing as ''."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        return "\n".join(_part(p) for p in content).strip()
    return str(content).strip()


def _part(part) -> str:
    if not isinstance(part, dict):
        return content_text(part)
    kind = str(part.get("type", "")).lower()
    if kind in IMAGE_PARTS or any(k.lower() in IMAGE_PARTS for k in part if k != "type"):
        return IMAGE_MARK
    return content_text(part.get("text"))


def role(name, turn: int) -> str:
    found = ROLES.get(str(name or "").strip().lower())
    if found is None:
        raise Malformed(msg("turn {turn} has an unknown speaker '{name}' (known: user, assistant, system, tool "
                            "and their aliases)", turn=turn, name=name))
    return found


def turn_list(record: dict, column: str) -> list[dict]:
    turns = as_list(record.get(column))
    if turns is None:
        raise Malformed(msg("'{column}' is not a list of turns", column=column))
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise Malformed(msg("turn {i} of '{column}' is not an object", i=i, column=column))
    return turns


def role_messages(turns: list[dict], column: str) -> list[dict]:
    """A list of {role, content} turns (any role vocabulary) as messages."""
    return [{"role": role(t.get("role"), i), "content": content_text(t.get("content"))} for i, t in enumerate(turns, 1)]
