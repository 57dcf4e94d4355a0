"""Preference data: pairs of a chosen and a rejected reply (DPO, ORPO), and KTO's single replies
marked desirable or not.

Each record becomes a conversation for supervised training (the prompt and the chosen or desirable
reply) and, under `preference`, the record in trl's own preference format, which the pipeline keeps
beside the data set: `{"prompt": [...], "chosen": [...], "rejected": [...]}` for pairs,
`{"prompt": [...], "completion": [...], "label": true|false}` for KTO (messages lists).
"""

from __future__ import annotations

from engine.data.transcripts import transcript
from engine.data.turns import Malformed, as_list, content_text, role
from engine.i18n import msg

CHOSEN = ("chosen", "preferred_output", "chosen_response", "response_chosen", "chosen_output")
REJECTED = ("rejected", "non_preferred_output", "rejected_response", "response_rejected", "rejected_output")
PROMPTS = ("prompt", "conversation", "context", "input", "question", "instruction", "query", "history")
LABELS = ("label", "desirable", "is_desirable", "kto_tag", "thumbs_up")
COMPLETIONS = ("completion", "response", "output", "answer", "messages", "conversations")
KIND = {"preference": "pairs", "kto": "kto"}  # format id -> what preference.jsonl holds
_YES = {"true", "1", "yes", "desirable", "good", "thumbs_up"}
_NO = {"false", "0", "no", "undesirable", "bad", "thumbs_down"}


def messages_of(value, column: str, speaker: str) -> list[dict]:
    """A column's value as messages: text (a `Human:`/`Assistant:` transcript, or one turn of
    `speaker`), one message object, an object holding `messages`, or a list of turns."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return transcript(value) or [{"role": speaker, "content": value.strip()}]
    if isinstance(value, dict):
        if "messages" in value:
            return messages_of(value["messages"], column, speaker)
        value = [value]
    turns = as_list(value)
    if turns is None:
        raise Malformed(msg("'{column}' is missing", column=column) if value is None else
                        msg("'{column}' is neither text nor a list of turns", column=column))
    messages = []
    for i, turn in enumerate(turns, 1):
        if isinstance(turn, str):
            messages.append({"role": speaker, "content": turn.strip()})
        elif isinstance(turn, dict):
            messages.append({"role": role(turn.get("role", turn.get("from")), i),
                             "content": content_text(turn.get("content", turn.get("value")))})
        else:
            raise Malformed(msg("turn {i} of '{column}' is not an object", i=i, column=column))
    return messages


def _split(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """A conversation as (what comes before the final reply, the final assistant turns)."""
    cut = len(messages)
    while cut and messages[cut - 1]["role"] == "assistant":
        cut -= 1
    return messages[:cut], messages[cut:]


def _prompt(record: dict, mapping: dict[str, str], *sides: list[dict]) -> list[dict]:
    """The conversation before the reply: from a reply column holding the whole conversation, or the
    prompt column; a mapped system column becomes its system turn."""
    given = [before for before in sides if before]
    if any(g != given[0] for g in given[1:]):
        raise Malformed(msg("the chosen and the rejected reply continue different conversations"))
    prompt = given[0] if given else (messages_of(record.get(mapping["prompt"]), mapping["prompt"], "user")
                                     if mapping.get("prompt") else [])
    system = content_text(record.get(mapping["system"])) if mapping.get("system") else ""
    if system:
        prompt = [{"role": "system", "content": system}, *(m for m in prompt if m["role"] != "system")]
    return prompt


def _reply(record: dict, mapping: dict[str, str], field: str) -> tuple[list[dict], list[dict]]:
    before, reply = _split(messages_of(record.get(mapping[field]), mapping[field], "assistant"))
    if not any(m["content"] for m in reply):
        raise Malformed(msg("the {field} reply is empty", field=field), "empty_reply")
    return before, reply


def pair(record: dict, mapping: dict[str, str]) -> dict:
    chosen_before, chosen = _reply(record, mapping, "chosen")
    rejected_before, rejected = _reply(record, mapping, "rejected")
    prompt = _prompt(record, mapping, chosen_before, rejected_before)
    return {"messages": prompt + chosen, "preference": {"prompt": prompt, "chosen": chosen, "rejected": rejected}}


def kto(record: dict, mapping: dict[str, str]) -> dict:
    before, completion = _reply(record, mapping, "completion")
    prompt = _prompt(record, mapping, before)
    label = desirable(record.get(mapping["label"]))
    if label is None:
        raise Malformed(msg("'{label}' is '{value}', not desirable (true) or undesirable (false)", label=mapping['label'],
                            value=record.get(mapping['label'])))
    return {"messages": prompt + completion, "preference": {"prompt": prompt, "completion": completion, "label": label}}


def desirable(value) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _YES else False if text in _NO else None
