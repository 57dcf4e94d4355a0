"""More ways of writing down a conversation: Gemini's `contents` with `parts` (roles user/model, a
`systemInstruction`), lists of `{human, assistant}` pairs (Firefly, MOSS), and turn lists marked
`is_human` with the bot's persona beside them (PIPPA, Character.AI dumps)."""

from __future__ import annotations

from engine.data.turns import Malformed, content_text, role, turn_list
from engine.i18n import msg

PAIR_KEYS = (("human", "assistant"), ("user", "assistant"), ("human", "bot"), ("user", "bot"))


def _system(record: dict, mapping: dict[str, str]) -> list[dict]:
    value = record.get(mapping["system"]) if mapping.get("system") else None
    if isinstance(value, dict):  # Gemini's systemInstruction: {"role": "system", "parts": [...]}
        value = value.get("parts", value.get("text"))
    text = content_text(value)
    return [{"role": "system", "content": text}] if text else []


def gemini(record: dict, mapping: dict[str, str]) -> dict:
    messages = [{"role": role(t.get("role"), i), "content": content_text(t.get("parts"))}
                for i, t in enumerate(turn_list(record, mapping["contents"]), 1)]
    system = _system(record, mapping)
    return {"messages": system + [m for m in messages if not (system and m["role"] == "system")]}


def turn_pairs(record: dict, mapping: dict[str, str]) -> dict:
    messages = []
    for i, turn in enumerate(turn_list(record, mapping["turns"]), 1):
        keys = next((k for k in PAIR_KEYS if k[0] in turn), None)
        if keys is None:
            raise Malformed(msg("turn {i} of '{turns}' has no human or user side", i=i, turns=mapping['turns']))
        messages += [{"role": "user", "content": content_text(turn.get(keys[0]))},
                     {"role": "assistant", "content": content_text(turn.get(keys[1]))}]
    return {"messages": _system(record, mapping) + messages}


def is_human(record: dict, mapping: dict[str, str]) -> dict:
    """Consecutive messages of one speaker merge into one turn (a template expects them to alternate)."""
    messages: list[dict] = []
    for turn in turn_list(record, mapping["conversation"]):
        speaker, text = ("user" if turn.get("is_human") else "assistant"), content_text(turn.get("message", turn.get("text")))
        if messages and messages[-1]["role"] == speaker:
            messages[-1]["content"] = f"{messages[-1]['content']}\n\n{text}".strip()
        else:
            messages.append({"role": speaker, "content": text})
    return {"messages": _system(record, mapping) + messages}
