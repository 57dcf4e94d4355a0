"""The tutorial's rules for what is worth training on, and the report of what they dropped.

A conversation is dropped when it is empty, has no user turn, has no assistant reply, is shorter
than a minimum, or (when asked) has no system turn. Every drop is counted by reason with its line or
row number, so a person can find it in their file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from engine.data.limits import MAX_LINE_BYTES
from engine.i18n import Message, joined, msg

REASONS = {
    "unreadable": "could not be read",
    "malformed": "does not fit the chosen shape",
    "empty": "empty",
    "no_user_turn": "no user turn",
    "no_assistant_reply": "no assistant reply",
    "too_short": "shorter than the minimum length",
    "too_long": "longer than the limit for one record",
    "no_system_turn": "no system turn (one is required)",
    "empty_reply": "an empty final reply",
    "undesirable": "an undesirable reply (kept for preference training only)",
    "has_image": "needs an image (this app trains text models)",
    "text_only_row": "a text-only row of a file with images (used only if you choose so)",
    "duplicate": "the same conversation as an earlier one (that copy is kept)",
}
KEEP_NUMBERS = 1000
SHOWN = 10  # line numbers and problems a report lists before '...'


@dataclass(frozen=True)
class Rules:
    min_chars: int = 20
    require_system: bool = False


def tidy(row: dict, system_prompt: str = "") -> dict:
    """Give a conversation `system_prompt` where it has no system turn, and leave out empty turns."""
    if "messages" not in row:
        return row
    messages = [m for m in row["messages"] if m["content"] or m.get("tool_calls")]
    if system_prompt.strip() and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system_prompt.strip()})
    return {**row, "messages": messages}


def check(row: dict, rules: Rules) -> str | None:
    """The reason to drop a (tidied) row, or None to keep it."""
    if "text" in row:
        text = row["text"].strip()
        return ("empty" if not text else "too_short" if len(text) < rules.min_chars
                else "too_long" if len(text) > MAX_LINE_BYTES else None)
    messages = row["messages"]
    if not messages:
        return "empty"
    roles = {m["role"] for m in messages}
    if "user" not in roles:
        return "no_user_turn"
    if "assistant" not in roles:
        return "no_assistant_reply"
    if rules.require_system and "system" not in roles:
        return "no_system_turn"
    system = sum(len(m["content"]) for m in messages if m["role"] == "system") if "system" in roles else 0
    total = sum(len(m["content"]) for m in messages)
    if total - system < rules.min_chars:
        return "too_short"
    if total > MAX_LINE_BYTES:
        return "too_long"
    return None


@dataclass
class DataReport:
    unit: str = "row"
    rows_in: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    dropped_rows: dict[str, list[int]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preference: int = 0  # preference records kept for preference training

    def keep(self) -> None:
        self.rows_in += 1
        self.rows_kept += 1

    def drop(self, reason: str, number: int, message: str | None = None) -> None:
        self.rows_in += 1
        self.dropped[reason] += 1
        numbers = self.dropped_rows.setdefault(reason, [])
        if len(numbers) < KEEP_NUMBERS:
            numbers.append(number)
        if message and len(self.errors) < KEEP_NUMBERS:
            self.errors.append({self.unit: number, "message": message})

    def as_dict(self) -> dict:
        return {
            "rows_in": self.rows_in, "rows_kept": self.rows_kept, "dropped": dict(self.dropped),
            "dropped_rows": self.dropped_rows, "errors": self.errors, "notes": self.notes,
            "preference": self.preference,
        }

    def summary(self) -> Message:
        """The one drop report, for the Dataset tab, the command line and error messages: rows in, kept
        and dropped; each reason with its count and where to look; the problems found; the notes. Plain
        text whose blocks are separated by blank lines, so it also reads as Markdown."""
        unit = self.unit
        counts = {"n_in": self.rows_in, "kept": self.rows_kept, "dropped": self.rows_in - self.rows_kept}
        blocks = [msg("Lines: {n_in} in, {kept} kept, {dropped} dropped" if unit == "line"
                      else "Rows: {n_in} in, {kept} kept, {dropped} dropped", **counts)]
        if self.dropped:
            blocks.append(joined((msg("- {reason}: {count} ({where})", reason=msg(REASONS[reason]), count=count,
                                      where=_where(unit, self.dropped_rows[reason], count))
                                  for reason, count in self.dropped.most_common()), "\n"))
        if self.errors:
            shown = [msg("- {problem}", problem=e["message"]) for e in self.errors[:SHOWN]]
            if len(self.errors) > SHOWN:
                shown.append(msg("- ... and {n} more", n=len(self.errors) - SHOWN))
            blocks.append(msg("Problems found:\n{problems}", problems=joined(shown, "\n")))
        blocks += [msg("Note: {note}", note=note) for note in self.notes]
        return joined(blocks, "\n\n")


def _where(unit: str, numbers: list[int], count: int) -> Message:
    more = ", ..." if count > SHOWN else ""
    shown = ", ".join(map(str, numbers[:SHOWN]))
    if count > 1:
        return msg("lines {numbers}{more}" if unit == "line" else "rows {numbers}{more}", numbers=shown, more=more)
    return msg("line {numbers}" if unit == "line" else "row {numbers}", numbers=shown)
