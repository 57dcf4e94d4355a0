"""SillyTavern / TavernAI character cards, V1, V2 (`chara_card_v2`) and V3 (`chara_card_v3`), as
JSON or as PNG (the JSON, base64-encoded, in a `chara` or `ccv3` text chunk).

A card becomes a system prompt and an opening assistant message (for chat), and its example
dialogues (`mes_example`, blocks starting with `<START>`) become conversations (for data), with
{{char}} and {{user}} filled in. Its embedded lorebook (`character_book`) is card context: chat adds
the entries the recent messages call up (`Card.chat_system_prompt`); it never becomes rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from engine.data.errors import DataError
from engine.data.limits import MAX_CARD_CHUNK_BYTES, human, max_file_bytes, parse_json
from engine.data.lorebook import Lorebook, is_lorebook, lorebook_from_dict
from engine.i18n import Message, msg

PYGMALION_KEYS = {"char_name": "name", "char_persona": "description", "world_scenario": "scenario",
                  "char_greeting": "first_mes", "example_dialogue": "mes_example"}
_CHAR = re.compile(r"\{\{char\}\}|<BOT>", re.IGNORECASE)
_USER = re.compile(r"\{\{user\}\}|<USER>", re.IGNORECASE)
_START = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Card:
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_message: str = ""
    example_dialogue: str = ""
    card_system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: tuple[str, ...] = ()
    creator_notes: str = ""
    tags: tuple[str, ...] = ()
    spec: str = "v1"
    lorebook: Lorebook | None = None

    def fill(self, text: str, user: str = "User") -> str:
        """Replace the card macros {{char}} and {{user}} (and V1's <BOT>, <USER>)."""
        return _USER.sub(user, _CHAR.sub(self.name, text or "")).strip()

    def system_prompt(self, user: str = "User") -> str:
        """The card as one system prompt, laid out like SillyTavern's default story string."""
        parts = [self.card_system_prompt.replace("{{original}}", "").strip(), f"You are {self.name}."]
        parts.append(self.description)
        if self.personality:
            parts.append(f"{self.name}'s personality: {self.personality}")
        if self.scenario:
            parts.append(f"Scenario: {self.scenario}")
        return self.fill("\n".join(p for p in parts if p and p.strip()), user)

    def chat_lorebook(self, user: str = "User") -> Lorebook | None:
        """The lorebook with the card's macros filled in, as chat uses it."""
        if not self.lorebook:
            return None
        return replace(self.lorebook, entries=tuple(replace(e, content=self.fill(e.content, user))
                                                    for e in self.lorebook.entries))

    def chat_system_prompt(self, messages: list[dict] = (), user: str = "User") -> str:
        """The system prompt for the next reply in a chat: the card's, then the lorebook entries that the
        recent `messages` call up by keyword (constant entries always). Training rows never hold these."""
        lore = self.chat_lorebook(user).context(messages) if self.lorebook else ""
        return "\n\n".join(p for p in (self.system_prompt(user), lore) if p)

    def opening(self, user: str = "User") -> list[dict]:
        """The start of a chat with this character: its system prompt (with the constant lorebook
        entries) and its first message."""
        messages = [{"role": "system", "content": self.chat_system_prompt((), user)}]
        if self.first_message.strip():
            messages.append({"role": "assistant", "content": self.fill(self.first_message, user)})
        return messages

    def conversations(self, user: str = "User") -> list[list[dict]]:
        """Training conversations from the example dialogues; the opening alone where there are none."""
        system = {"role": "system", "content": self.system_prompt(user)}
        found = [turns for block in _START.split(self.example_dialogue or "") if (turns := self._turns(block, user))]
        return [[system, *turns] for turns in found] or [self.opening(user)]

    def examples(self) -> int:
        """How many example dialogues (`<START>` blocks with turns) the card holds."""
        return sum(1 for block in _START.split(self.example_dialogue or "") if self._turns(block, "User"))

    def describe(self) -> Message:
        """What the card gives a data set, for the report."""
        count = self.examples()
        if count == 1:
            rows = msg("its 1 example dialogue (`<START>` block) becomes the training row, `{{{{char}}}}` filled in as "
                       "'{name}' and `{{{{user}}}}` as the user name chosen (default 'User')", name=self.name)
        elif count:
            rows = msg("its {count} example dialogues (`<START>` blocks) become the training rows, `{{{{char}}}}` filled "
                       "in as '{name}' and `{{{{user}}}}` as the user name chosen (default 'User')", count=count,
                       name=self.name)
        else:
            rows = msg("it has no example dialogues (`mes_example` with `<START>` blocks), so its only row is the "
                       "opening, which has no user turn to learn from")
        lore = (msg(" Its {book} is kept as card context for chat (the entries the messages call up join the system "
                    "prompt), never as training rows.", book=self.lorebook.describe()) if self.lorebook else "")
        return msg("Character card '{name}' ({spec}): {rows}.{lore}", name=self.name, spec=self.spec.upper(), rows=rows,
                   lore=lore)

    def _turns(self, block: str, user: str) -> list[dict]:
        speaker = re.compile(rf"^\s*(\{{\{{user\}}\}}|<USER>|{re.escape(user)}|\{{\{{char\}}\}}|<BOT>|{re.escape(self.name)})\s*:",
                             re.IGNORECASE)
        turns: list[dict] = []
        for line in block.splitlines():
            match = speaker.match(line)
            if match:
                who = match.group(1).lower()
                role = "user" if who in ("{{user}}", "<user>", user.lower()) else "assistant"
                turns.append({"role": role, "content": line[match.end():]})
            elif turns:
                turns[-1]["content"] += "\n" + line
        return [{"role": t["role"], "content": self.fill(t["content"], user)} for t in turns if t["content"].strip()]


def is_card(record: dict) -> bool:
    spec = str(record.get("spec", ""))
    if spec.startswith("chara_card"):
        return True
    return ("name" in record and "first_mes" in record) or ("char_name" in record and "char_greeting" in record)


def card_from_dict(record: dict) -> Card:
    """A Card from a parsed card of any version; raises `DataError` when it is not one."""
    if not isinstance(record, dict) or not is_card(record):
        keys = ", ".join(list(record)[:12]) if isinstance(record, dict) else type(record).__name__
        raise DataError(
            msg("This is not a character card (fields seen: {keys}). A card has 'spec': "
                "'chara_card_v2' or 'chara_card_v3' with a 'data' object, or the V1 fields name, "
                "description, first_mes.", keys=keys)
        )
    spec = str(record.get("spec", ""))
    data = record.get("data") if spec.startswith("chara_card") and isinstance(record.get("data"), dict) else record
    data = {PYGMALION_KEYS.get(k, k): v for k, v in data.items()}
    text = lambda key: str(data.get(key) or "")  # noqa: E731
    return Card(
        name=text("name").strip() or "Character",
        description=text("description"),
        personality=text("personality"),
        scenario=text("scenario"),
        first_message=text("first_mes"),
        example_dialogue=text("mes_example"),
        card_system_prompt=text("system_prompt"),
        post_history_instructions=text("post_history_instructions"),
        alternate_greetings=tuple(str(g) for g in data.get("alternate_greetings") or ()),
        creator_notes=text("creator_notes"),
        tags=tuple(str(t) for t in data.get("tags") or ()),
        spec={"chara_card_v2": "v2", "chara_card_v3": "v3"}.get(spec, "v1"),
        lorebook=lorebook_from_dict(book) if is_lorebook(book := data.get("character_book")) else None,
    )


def card_json_from_png(path: Path, notes: list[str] | None = None) -> dict:
    """The card JSON stored in a PNG's `ccv3` (spec V3, preferred) or `chara` text chunk; SillyTavern
    writes both, the V2 one for older readers. A damaged `ccv3` falls back to `chara`, said in `notes`.

    The chunks are walked here rather than through Pillow: only the text chunks are read, each
    refused over `MAX_CARD_CHUNK_BYTES` before it is read, and the pixels are never decoded."""
    path = Path(path)
    try:
        chunks = _text_chunks(path)
    except _BadPng as e:
        raise DataError(msg("'{name}' could not be read as a PNG image: {problem}. Export the card again, as PNG "
                            "or JSON.", name=path.name, problem=e)) from None
    if not chunks:
        raise DataError(
            msg("'{name}' is a PNG without a character card in it (no 'chara' or 'ccv3' text "
                "chunk). Export the card again from SillyTavern or the site it came from, as PNG "
                "or JSON.", name=path.name)
        )
    found = {key: _chunk_json(text) for key, text in chunks.items()}
    notes = notes if notes is not None else []
    if isinstance(found.get("ccv3"), dict):
        if "chara" in found:
            notes.append(msg("The card was read from the PNG's 'ccv3' chunk (spec V3), preferred over its "
                             "'chara' chunk (V2)."))
        return found["ccv3"]
    if isinstance(found.get("chara"), dict):
        if "ccv3" in found:
            notes.append(msg("The PNG's 'ccv3' chunk (spec V3) is damaged, so the card was read from its 'chara' chunk "
                             "(V2)."))
        return found["chara"]
    raise DataError(msg("The character card inside '{name}' is damaged: its text is not a card's JSON. Export it "
                        "again.", name=path.name))


def _chunk_json(text: str) -> dict | None:
    try:
        value = parse_json(base64.b64decode(text).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, DataError):
        return None
    return value if isinstance(value, dict) else None


class _BadPng(Exception):
    pass


def _text_chunks(path: Path) -> dict[str, str]:
    """keyword -> text of the card's tEXt, zTXt and iTXt chunks (keywords 'chara' and 'ccv3' only)."""
    found: dict[str, str] = {}
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            raise _BadPng("it does not start as a PNG file does")
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise _BadPng("the file is cut short")
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND":
                return found
            if kind not in (b"tEXt", b"zTXt", b"iTXt"):
                f.seek(length + 4, 1)  # the chunk and its checksum
                continue
            if length > MAX_CARD_CHUNK_BYTES:
                raise _BadPng(f"a text chunk is {human(length)}, over the limit of {human(MAX_CARD_CHUNK_BYTES)}")
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4:
                raise _BadPng("the file is cut short")
            if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
                raise _BadPng("a text chunk is damaged (its checksum does not match)")
            keyword, _, text = data.partition(b"\0")
            if keyword in (b"chara", b"ccv3"):
                found[keyword.decode()] = _chunk_text(kind, text)


def _chunk_text(kind: bytes, text: bytes) -> str:
    if kind == b"iTXt":  # compression flag, method, language\0, translated keyword\0, text
        compressed, text = text[:1] == b"\1", text[2:].split(b"\0", 2)[-1]
    elif kind == b"zTXt":
        compressed, text = True, text[1:]
    else:
        compressed = False
    if compressed:
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(text, MAX_CARD_CHUNK_BYTES)
        except zlib.error:
            raise _BadPng("a compressed text chunk is damaged") from None
        if inflate.unconsumed_tail:
            raise _BadPng(f"a compressed text chunk holds over {human(MAX_CARD_CHUNK_BYTES)}")
    return text.decode("latin-1")


def read_card(path: str | Path) -> Card:
    """Read a character card from a .json or .png file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(msg("There is no file at '{path}'.", path=path))
    with open(path, "rb") as f:
        png = f.read(8) == b"\x89PNG\r\n\x1a\n"
    if png:
        return card_from_dict(card_json_from_png(path))
    if path.stat().st_size > max_file_bytes():
        raise DataError(msg("'{name}' is {size}, too large for a character card.", name=path.name,
                            size=human(path.stat().st_size)))
    try:
        record = parse_json(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(msg("'{name}' is not a character card: it is not valid JSON ({problem}).", name=path.name, problem=e)) from None
    except DataError as e:
        raise DataError(msg("'{name}' is not a character card: {problem}", name=path.name, problem=e)) from None
    return card_from_dict(record)

