"""A chat saved as JSON and read back: the messages, the system prompt and the character's name.

Reads this app's own files, and also a bare list of {role, content} messages or an object with a
`messages` list (OpenAI's shape, a system message first); anything else is refused with a message
saying what was wrong."""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from engine.data.lorebook import Lorebook
from engine.files import write_text
from engine.i18n import joined, msg
from engine.validation import sentence

FORMAT = "lora-workbench-chat"
MAX_BYTES = 20 * 2**20
_LOREBOOK = TypeAdapter(Lorebook)


class ChatHistoryError(ValueError):
    """A chat file that cannot be read; the message says what was wrong and what to do."""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _joined(cls, content):
        """Text given as a list of parts (OpenAI's and Gradio's [{"type": "text", "text": ...}]) is joined."""
        if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            return "".join(str(p.get("text", "")) for p in content)
        return content


class Chat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: Literal["lora-workbench-chat"] = FORMAT
    version: int = 1
    character: str = ""
    system: str = ""
    adapter: str | None = Field(None, description="the side that answered: 'base', a run, or RUN:checkpoint-N")
    preset: str | None = Field(None, description="the sampling preset chosen")
    greeting: str = Field("", description="the character's first message, where the chat starts again on Clear")
    lorebook: Lorebook | None = Field(None, description="the card's lorebook: its entries join the system prompt of "
                                                        "a reply when the recent messages call them up")
    messages: list[Message] = Field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, ensure_ascii=False) + "\n"

    def turns(self) -> list[dict]:
        return [m.model_dump() for m in self.messages]

    @property
    def started(self) -> bool:
        """Whether there is a conversation that replacing this chat would lose (more than the greeting)."""
        return any(m.role == "user" or m.content != self.greeting for m in self.messages)


def from_card(card) -> Chat:
    """A new chat with a character card (engine.data.Card): its name, system prompt and first message."""
    opening = card.fill(card.first_message)
    return Chat(character=card.name, system=card.system_prompt(), greeting=opening, lorebook=card.chat_lorebook(),
                messages=[Message(role="assistant", content=opening)] if opening else [])


def lorebook_of(value) -> Lorebook | None:
    """The lorebook a page kept (a Chat's `lorebook` as JSON), or None where there is none or it is damaged."""
    try:
        return _LOREBOOK.validate_python(value) if value else None
    except ValidationError:
        return None


def reply_system(system: str, lorebook: Lorebook | None, messages: list[dict]) -> tuple[str, list[str]]:
    """The system prompt for the next reply: the chat's own, then the lorebook entries that the recent
    `messages` call up (constant ones always); and the names of those entries, to show which joined."""
    entries = lorebook.active(messages) if lorebook else []
    parts = [system.strip() if system else "", *(e.content.strip() for e in entries)]
    return "\n\n".join(p for p in parts if p), [e.name or ", ".join(e.keys[:2]) for e in entries]


def restore(saved) -> Chat:
    """The chat kept in the browser (a Chat's fields but the greeting: an assistant's first message is taken
    for it), or an empty one where there is none or it is damaged."""
    try:
        chat = _system_first(Chat.model_validate(saved)) if isinstance(saved, dict) else Chat()
    except (ValidationError, ChatHistoryError):
        return Chat()
    first = chat.messages[0] if chat.messages else None
    return chat.model_copy(update={"greeting": first.content if first and first.role == "assistant" else ""})


def parse(text: str | bytes) -> Chat:
    """A Chat from the text of a chat file, or a ChatHistoryError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ChatHistoryError(msg("This file is not text, so it is not a saved chat. Choose a .json file saved "
                                       "with 'Export chat'.")) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChatHistoryError(msg("This file is not valid JSON ({detail} at line {line}), so it is not a saved chat.",
                                   detail=e.msg, line=e.lineno)) from None
    if isinstance(data, list):
        data = {"messages": data}
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        found = ", ".join(map(str, list(data)[:8])) if isinstance(data, dict) else type(data).__name__
        raise ChatHistoryError(
            msg('This JSON is not a chat: it needs a \'messages\' list of {{"role", "content"}} '
                    "objects (found: {found}). Choose a file saved with 'Export chat'.", found=found)
        )
    if data.get("format", FORMAT) != FORMAT:
        raise ChatHistoryError(msg("This file's format is '{format}', not a chat saved by this app ('{ours}').",
                                   format=data['format'], ours=FORMAT))
    try:
        chat = Chat.model_validate(data)
    except ValidationError as e:
        raise ChatHistoryError(_explain(e)) from None
    return _system_first(chat)


def save(chat: Chat, folder: str | Path) -> Path:
    """Write the chat into a folder as `chat-<character>-<time>.json`; returns the file."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", chat.character).strip("-")[:40] or "chat"
    path = Path(folder) / f"chat-{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    write_text(path, chat.to_json())
    return path


_DOWNLOADS: list[Path] = []


def save_download(chat: Chat) -> Path:
    """The chat as a file to hand to the browser: in one temporary folder of this process (removed when
    it exits), where each call first removes the files older than a minute (the web server has copied
    them by then), so exports leave nothing behind."""
    if not _DOWNLOADS:
        _DOWNLOADS.append(Path(tempfile.mkdtemp(prefix="workbench-chats-")))
        atexit.register(shutil.rmtree, _DOWNLOADS[0], ignore_errors=True)
    for old in _DOWNLOADS[0].glob("*.json"):
        if time.time() - old.stat().st_mtime > 60:
            old.unlink(missing_ok=True)
    return save(chat, _DOWNLOADS[0])


def read(path: str | Path) -> Chat:
    path = Path(path)
    if not path.is_file():
        raise ChatHistoryError(msg("There is no file at '{path}'.", path=path))
    if path.stat().st_size > MAX_BYTES:
        raise ChatHistoryError(msg("'{name}' is larger than {mb} MB; a saved chat is far smaller.", name=path.name,
                                   mb=MAX_BYTES // 2**20))
    return parse(path.read_bytes())


def _system_first(chat: Chat) -> Chat:
    """A system message at the start becomes the chat's system prompt; one later on is refused."""
    messages = list(chat.messages)
    system = chat.system
    if messages and messages[0].role == "system":
        system = system or messages[0].content
        messages = messages[1:]
    for i, m in enumerate(messages):
        if m.role == "system":
            raise ChatHistoryError(msg("Message {i} is a system message in the middle of the chat; only the first "
                                       "message may be one.", i=i + 1))
    return chat.model_copy(update={"messages": messages, "system": system})


def _explain(error: ValidationError) -> str:
    lines = []
    for err in error.errors()[:5]:
        loc = list(err["loc"])
        if loc[:1] == ["messages"] and len(loc) >= 2 and isinstance(loc[1], int):
            n, field, given = loc[1] + 1, loc[2] if len(loc) > 2 else None, err.get("input")
            if err["type"] == "missing":
                lines.append(msg("Message {n} has no '{field}'.", n=n, field=field))
            elif field == "role":
                lines.append(msg("Message {n} has the role {given!r}; a role is 'user', 'assistant' or 'system'.",
                                 n=n, given=given))
            elif field == "content":
                lines.append(msg("Message {n}'s content is not text (got {kind}).", n=n, kind=type(given).__name__))
            else:
                lines.append(msg("Message {n} is not a {{\"role\", \"content\"}} object (got {given!r:.60}).",
                                 n=n, given=given))
        else:
            lines.append(sentence(err))
    return msg("This is not a chat this app can read: {problems}", problems=joined(lines))
