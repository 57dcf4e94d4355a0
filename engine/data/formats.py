"""The record shapes the data engine knows, by id (used by the CLI and the UI).

Each shape names the fields a person can map to columns of their file; detection fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import Message, joined, msg


@dataclass(frozen=True)
class RecordFormat:
    id: str
    title: str
    looks_like: str
    fields: dict[str, str]  # mapping field -> what it becomes
    required: tuple[str, ...] = ()


RECORD_FORMATS: dict[str, RecordFormat] = {f.id: f for f in (
    RecordFormat("preference", "Preference pairs", "a 'chosen' and a 'rejected' reply (+ a prompt), e.g. HH-RLHF, UltraFeedback",
           {"prompt": "the conversation before the replies", "chosen": "the better reply (trained)",
            "rejected": "the worse reply (kept for preference training)", "system": "system turn"}, ("chosen", "rejected")),
    RecordFormat("kto", "KTO (desirable or not)", "a completion with a desirable/undesirable label, e.g. trl's KTO sets",
           {"prompt": "the conversation before the reply", "completion": "the reply (or the whole conversation)",
            "label": "true: desirable (trained), false: undesirable (preference training only)", "system": "system turn"},
           ("completion", "label")),
    RecordFormat("gemini", "Gemini contents", "a 'contents' list of role/parts turns (user/model) + 'systemInstruction'",
           {"contents": "the turns", "system": "system turn"}, ("contents",)),
    RecordFormat("turn_pairs", "Human/assistant pairs", "a list of {human, assistant} objects, one a turn (Firefly, MOSS)",
           {"turns": "the list of pairs", "system": "system turn"}, ("turns",)),
    RecordFormat("is_human_turns", "is_human turns", "a list of {message, is_human} turns + the bot's persona (PIPPA)",
           {"conversation": "the turns", "system": "system turn (the persona)"}, ("conversation",)),
    RecordFormat("message_tree", "Message tree", "a prompt with ranked 'replies', each with replies (OpenAssistant trees)",
           {"tree": "the first message (with its replies)"}, ("tree",)),
    RecordFormat("message_rows", "Message rows", "one message a row, linked by 'message_id'/'parent_id' (OpenAssistant oasst1/oasst2)", {}),
    RecordFormat("alpaca", "Alpaca", "instruction / input / output columns",
           {"instruction": "user turn", "input": "added to the user turn", "output": "assistant reply",
            "system": "system turn", "history": "earlier [question, answer] pairs"}, ("instruction", "output")),
    RecordFormat("sharegpt", "ShareGPT", "a 'conversations' list of from/value turns",
           {"conversations": "the turns", "system": "system turn", "tools": "tool definitions"}, ("conversations",)),
    RecordFormat("messages", "OpenAI / Hugging Face messages", "a 'messages' list of role/content turns",
           {"messages": "the turns", "system": "system turn", "tools": "tool definitions"}, ("messages",)),
    RecordFormat("chatml", "ChatML text", "text holding <|im_start|>role ... <|im_end|> turns",
           {"text": "the turns", "system": "system turn"}, ("text",)),
    RecordFormat("roleplay_markers", "Roleplay markers", "text with <|system|>, <|user|>, <|assistant|> markers",
           {"text": "the turns", "system": "system turn (e.g. 'description')"}, ("text",)),
    RecordFormat("pairs", "Prompt and reply", "two columns such as prompt/response or question/answer",
           {"prompt": "user turn", "response": "assistant reply", "system": "system turn"}, ("prompt", "response")),
    RecordFormat("sillytavern_chat", "SillyTavern chat", "a chat export: a header line, then name/is_user/mes lines", {}),
    RecordFormat("character_card", "Character card", "a SillyTavern / TavernAI card (V1, V2, V3; JSON or PNG)", {}),
    RecordFormat("text", "Plain text", "a 'text' column or a plain text file (continued pre-training)",
           {"text": "the text"}, ("text",)),
)}

TEXT_RECORD_FORMATS = ("text",)


def known_shapes() -> Message:
    """Each shape's id and what it looks like, for a message (the description in the viewer's language)."""
    return joined((msg("{id} ({looks})", id=f.id, looks=msg(f.looks_like)) for f in RECORD_FORMATS.values()), "; ")
