"""Lorebooks (SillyTavern World Info, and a character card's embedded `character_book`): background
entries that chat adds to the prompt when one of their keywords comes up in the recent messages.

A lorebook is context for chat, never training rows. Both layouts are read: World Info files keep
their entries in a dict by uid (`key`, `keysecondary`, `disable`, `order`), card books in a list
(`keys`, `secondary_keys`, `enabled`, `insertion_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import Message, msg

DEFAULT_SCAN_DEPTH = 2  # SillyTavern's default: the last two messages are searched for keys


@dataclass(frozen=True)
class Entry:
    keys: tuple[str, ...]
    content: str
    name: str = ""
    secondary_keys: tuple[str, ...] = ()  # where `selective`, one of these must appear too
    selective: bool = False
    constant: bool = False  # always in the prompt
    enabled: bool = True
    order: int = 100  # lower first
    case_sensitive: bool = False

    def matches(self, text: str) -> bool:
        if self.constant:
            return True
        fold = (lambda s: s) if self.case_sensitive else str.lower
        found = lambda keys: any(k and fold(k) in fold(text) for k in keys)  # noqa: E731
        return found(self.keys) and (not (self.selective and self.secondary_keys) or found(self.secondary_keys))


@dataclass(frozen=True)
class Lorebook:
    name: str
    entries: tuple[Entry, ...]
    scan_depth: int = DEFAULT_SCAN_DEPTH

    def active(self, messages: list[dict] = ()) -> list[Entry]:
        """The enabled entries that the last `scan_depth` messages call up, constant ones always."""
        recent = list(messages)[-self.scan_depth:] if self.scan_depth else []
        text = "\n".join(str(m.get("content") or "") for m in recent)
        return sorted((e for e in self.entries if e.enabled and e.content.strip() and e.matches(text)),
                      key=lambda e: e.order)

    def context(self, messages: list[dict] = ()) -> str:
        """The active entries' text, one paragraph each, for the prompt."""
        return "\n\n".join(e.content.strip() for e in self.active(messages))

    def describe(self) -> Message:
        names = [e.name or ", ".join(e.keys[:2]) for e in self.entries if e.name or e.keys][:3]
        shown = f" ({', '.join(repr(n) for n in names)}{', ...' if len(self.entries) > 3 else ''})" if names else ""
        title = f" '{self.name}'" if self.name else ""
        if len(self.entries) == 1:
            return msg("lorebook{title} with 1 entry{shown}", title=title, shown=shown)
        return msg("lorebook{title} with {count} entries{shown}", title=title, count=len(self.entries), shown=shown)


def is_lorebook(record) -> bool:
    """A World Info file or a card book: entries (a dict or a list) of objects with keys and content."""
    entries = record.get("entries") if isinstance(record, dict) else None
    values = list(entries.values()) if isinstance(entries, dict) else entries if isinstance(entries, list) else None
    return bool(values) and all(isinstance(e, dict) and ("content" in e or "text" in e) and
                                ("key" in e or "keys" in e) for e in values)


def lorebook_from_dict(record: dict, name: str = "") -> Lorebook:
    entries = record["entries"]
    values = entries.values() if isinstance(entries, dict) else entries
    depth = record.get("scan_depth")
    return Lorebook(
        name=str(record.get("name") or name or ""),
        entries=tuple(_entry(e) for e in values if isinstance(e, dict)),
        scan_depth=depth if isinstance(depth, int) and depth >= 0 else DEFAULT_SCAN_DEPTH,
    )


def _entry(e: dict) -> Entry:
    order = e.get("insertion_order", e.get("order", 100))
    return Entry(
        keys=_keys(e.get("keys", e.get("key"))),
        content=str(e.get("content", e.get("text")) or ""),
        name=str(e.get("name") or e.get("comment") or e.get("displayName") or ""),
        secondary_keys=_keys(e.get("secondary_keys", e.get("keysecondary"))),
        selective=bool(e.get("selective")),
        constant=bool(e.get("constant")),
        enabled=bool(e.get("enabled", not e.get("disable", False))),
        order=order if isinstance(order, (int, float)) else 100,
        case_sensitive=bool(e.get("case_sensitive", e.get("caseSensitive"))),
    )


def _keys(value) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else ()
    return tuple(str(k).strip() for k in items if str(k).strip())
