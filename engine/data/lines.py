"""What every reader shares: a line or row that could not be read, and lines read within the bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from engine.data.limits import MAX_LINE_BYTES, human
from engine.i18n import msg

ReadProgress = Callable[[int, int], None]  # (bytes or rows done, total)


@dataclass(frozen=True)
class ReadError:
    """A line or row that could not be read; the rest of the file still is."""

    unit: str  # "line" or "row"
    number: int
    message: str

    def as_dict(self) -> dict:
        return {self.unit: self.number, "message": self.message}


Item = tuple  # (number, record): the line or row a record came from, and the record


def bounded_lines(f) -> Iterator[tuple[int, bytes | str | None, int]]:
    """(number, line, length) for each line of the open file `f`; `line` is None for one over
    `MAX_LINE_BYTES`, which is skipped in pieces, never held whole."""
    number = 0
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        length = len(line)
        if length > MAX_LINE_BYTES and not line.endswith(b"\n" if isinstance(line, bytes) else "\n"):
            line = None
            while (piece := f.readline(1024 * 1024)) and not piece.endswith(b"\n" if isinstance(piece, bytes) else "\n"):
                length += len(piece)
            length += len(piece)
        yield number, line, length


def too_long(unit: str, number: int, length: int) -> ReadError:
    return ReadError(unit, number, msg(
        "Line {number} is {length} long, over the limit of {limit} for one record (far more than a model trains on "
        "at once); split it into several records." if unit == "line" else
        "Row {number} is {length} long, over the limit of {limit} for one record (far more than a model trains on "
        "at once); split it into several records.", number=number, length=human(length), limit=human(MAX_LINE_BYTES)))
