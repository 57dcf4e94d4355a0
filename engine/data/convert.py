"""Every record shape to one shape inside: `{"messages": [{role, content}, ...]}` (trl's
conversational format; tool calls kept as `tool_calls`, tool definitions as a JSON string in
`tools`), or `{"text": ...}` for continued pre-training.

A mapped system column becomes the conversation's system turn; where it is empty, a system turn
already in the conversation is kept.
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Iterator

from engine.data.cards import card_from_dict
from engine.data.detect import named
from engine.data.errors import DataError
from engine.data.formats import RECORD_FORMATS
from engine.data.dialogues import gemini, is_human, turn_pairs
from engine.data import preference
from engine.data.transcripts import split_prompt, template_of
from engine.data.trees import message_rows, tree
from engine.data.turns import Malformed, as_list, content_text, role, turn_list
from engine.i18n import msg

_CHATML = re.compile(r"<\|im_start\|>[ \t]*(\w+)[ \t]*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S)
_MARKER = re.compile(r"<\|(system|user|assistant)\|>")
_EOS = re.compile(r"(\s*</s>\s*)+$")


def check_mapping(format_id: str, mapping: dict[str, str], columns: list[str]) -> None:
    """Raise `DataError` for a mapping that names unknown fields or columns, or misses a required one."""
    fmt = RECORD_FORMATS[format_id]
    shown = named(columns)
    for name, column in mapping.items():
        if name not in fmt.fields:
            raise DataError(msg("'{name}' is not a field of the {format_id} shape; its fields are {fields}.", name=name, format_id=format_id,
                                fields=", ".join(fmt.fields) or msg("none")))
        if column and column not in columns:
            raise DataError(msg("There is no column '{column}' in this file (mapped to {name}). Its columns are: "
                                "{shown}.", column=column, name=name, shown=shown))
    missing = [name for name in fmt.required if not mapping.get(name)]
    if missing:
        needs = ", ".join(f"{name} ({fmt.fields[name]})" for name in missing)
        raise DataError(msg("To read this file as {format_id}, choose the column for: {needs}. Its columns are: "
                            "{shown}.", format_id=format_id, needs=needs, shown=shown))


def convert(items: Iterable[tuple[int, dict]], format_id: str, mapping: dict[str, str],
            card_user: str = "User", all_branches: bool = False) -> Iterator[tuple[int, dict | Malformed]]:
    """(number, row) for each converted record, or (number, Malformed) for one that does not fit.
    `card_user`: the name a card's example dialogues give the user; `all_branches`: a message tree gives
    every branch, not only its top-ranked one."""
    if format_id == "sillytavern_chat":
        yield from _sillytavern(items)
        return
    if format_id == "message_rows":
        yield from message_rows(items, all_branches)
        return
    one = _PER_RECORD.get(format_id)
    if format_id == "message_tree":
        one = lambda record, mapping: tree(record, mapping, all_branches)  # noqa: E731
    for number, record in items:
        try:
            if format_id == "character_card":
                for messages in card_from_dict(record).conversations(card_user):
                    yield number, {"messages": messages}
            else:
                out = one(record, mapping)
                for row in out if isinstance(out, list) else (out,):  # a tree gives several
                    yield number, row
        except Malformed as e:
            yield number, e
        except DataError as e:
            yield number, Malformed(str(e))


def _finish(messages: list[dict], record: dict, mapping: dict[str, str]) -> dict:
    system = content_text(record.get(mapping["system"])) if mapping.get("system") else ""
    if system:
        messages = [{"role": "system", "content": system}, *(m for m in messages if m["role"] != "system")]
    row = {"messages": messages}
    tools = record.get(mapping["tools"]) if mapping.get("tools") else None
    if tools:
        row["tools"] = tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    return row


def _messages(record: dict, mapping: dict[str, str]) -> dict:
    messages = []
    for i, turn in enumerate(turn_list(record, mapping["messages"]), 1):
        message = {"role": role(turn.get("role"), i), "content": content_text(turn.get("content"))}
        for key in ("tool_calls", "tool_call_id", "name"):
            if turn.get(key):
                message[key] = turn[key]
        messages.append(message)
    return _finish(messages, record, mapping)


def _sharegpt(record: dict, mapping: dict[str, str]) -> dict:
    messages = []
    for i, turn in enumerate(turn_list(record, mapping["conversations"]), 1):
        speaker, value = str(turn.get("from", "")).strip().lower(), turn.get("value")
        if speaker == "function_call":
            messages.append(_tool_call(value))
        else:
            messages.append({"role": role(speaker, i), "content": content_text(value)})
    return _finish(messages, record, mapping)


def _tool_call(value) -> dict:
    """A ShareGPT function_call turn ({"name", "arguments"} as JSON) as an assistant tool call."""
    try:
        call = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        call = None
    calls = call if isinstance(call, list) else [call]
    if not all(isinstance(c, dict) and c.get("name") for c in calls):
        return {"role": "assistant", "content": content_text(value)}
    return {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": c.get("arguments", c.get("parameters", {}))}}
        for c in calls
    ]}


def _chatml(record: dict, mapping: dict[str, str]) -> dict:
    text = _string(record, mapping["text"])
    turns = _CHATML.findall(text)
    if not turns:
        raise Malformed(msg("'{text}' holds no <|im_start|> turns", text=mapping['text']))
    return _finish([{"role": role(r, i), "content": c.strip()} for i, (r, c) in enumerate(turns, 1)], record, mapping)


def _roleplay(record: dict, mapping: dict[str, str]) -> dict:
    parts = _MARKER.split(_string(record, mapping["text"]))
    if len(parts) < 3:
        raise Malformed(msg("'{text}' holds no <|user|> or <|assistant|> markers", text=mapping['text']))
    messages = [{"role": "system", "content": _EOS.sub("", parts[0]).strip()}] if parts[0].strip() else []
    messages += [{"role": role, "content": _EOS.sub("", content).strip()} for role, content in zip(parts[1::2], parts[2::2])]
    return _finish(messages, record, mapping)


def _pairs(record: dict, mapping: dict[str, str]) -> dict:
    prompt = record.get(mapping["prompt"])
    template = template_of(prompt) if isinstance(prompt, str) else None
    asked = split_prompt(prompt, template) if template else [{"role": "user", "content": content_text(prompt)}]
    return _finish([*asked, {"role": "assistant", "content": content_text(record.get(mapping["response"]))}], record, mapping)


def _alpaca(record: dict, mapping: dict[str, str]) -> dict:
    messages = []
    history = as_list(record.get(mapping["history"])) if mapping.get("history") else None
    for pair in history or []:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise Malformed(msg("'{history}' is not a list of [question, answer] pairs", history=mapping['history']))
        messages += [{"role": "user", "content": content_text(pair[0])}, {"role": "assistant", "content": content_text(pair[1])}]
    instruction = content_text(record.get(mapping["instruction"]))
    extra = content_text(record.get(mapping["input"])) if mapping.get("input") else ""
    messages += [{"role": "user", "content": f"{instruction}\n\n{extra}".strip()},
                 {"role": "assistant", "content": content_text(record.get(mapping["output"]))}]
    return _finish(messages, record, mapping)


def _text(record: dict, mapping: dict[str, str]) -> dict:
    return {"text": content_text(record.get(mapping["text"]))}


def _string(record: dict, column: str) -> str:
    value = record.get(column)
    if not isinstance(value, str):
        raise Malformed(msg("'{column}' is missing", column=column) if value is None else
                        msg("'{column}' is not text", column=column))
    return value


def _sillytavern(items: Iterable[tuple[int, dict]]) -> Iterator[tuple[int, dict | Malformed]]:
    """A SillyTavern chat file is one conversation: the header line, then one line per message."""
    messages, first = [], None
    for number, record in items:
        if "mes" not in record or record.get("is_system"):
            continue  # the header, and messages SillyTavern hides from the prompt
        first = first or number
        messages.append({"role": "user" if record.get("is_user") else "assistant", "content": content_text(record["mes"])})
    if first is not None:
        yield first, {"messages": messages}


_PER_RECORD = {
    "preference": preference.pair, "kto": preference.kto, "gemini": gemini, "turn_pairs": turn_pairs, "is_human_turns": is_human,
    "alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages, "chatml": _chatml,
    "roleplay_markers": _roleplay, "pairs": _pairs, "text": _text,
}
