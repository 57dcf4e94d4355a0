"""CSV and TSV files: the separator, the header line (or its absence), and one record per row (streamed).

A quoted cell may span lines; its line ends come out as "\n" whatever the file used.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from typing import Iterator

from engine.data.errors import DataError
from engine.data.limits import MAX_COLUMNS, MAX_LINE_BYTES, human
from engine.data.lines import Item, ReadError, ReadProgress
from engine.i18n import Message, msg

_NUMBER = re.compile(r"\s*[-+]?\d[\d.,]*\s*$")
_SENTENCE_END = re.compile(r"[.?!:;。？！：；…)\]\"'”’]\s*$")


def read_csv(source, progress: ReadProgress) -> Iterator[Item | ReadError]:
    csv.field_size_limit(MAX_LINE_BYTES)
    with open(source.path, "rb") as raw:
        bad: dict[int, int] = {}  # line -> the first byte that is not valid text in the file's encoding
        lines = _decoded_lines(raw, source.encoding, bad)
        first = next(lines, "")
        if len(first) > MAX_LINE_BYTES:
            raise DataError(msg("The first line of '{name}' is over the limit of {limit}. Check that it "
                                "is a table with a header line naming its columns.", name=source.path.name,
                                limit=human(MAX_LINE_BYTES)))
        delimiter = "\t" if source.path.suffix.lower() in (".tsv", ".tab") else max(",\t;", key=first.count)
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        cells = [_cell(c) for c in next(reader, [])]
        if not any(c.strip() for c in cells):
            raise DataError(msg("'{name}' has no header line naming its columns. Add one, e.g. prompt,response.", name=source.path.name))
        if len(cells) > MAX_COLUMNS:
            raise DataError(too_wide(source.path.name, len(cells)))
        headerless = is_data_row(cells)
        if headerless:
            header = ["prompt", "response"] if len(cells) == 2 else [f"column_{i}" for i in range(1, len(cells) + 1)]
            source.notes.append(_headerless_note(cells, header))
            pending = [(1, cells)]
        else:
            header, pending = _header(cells), []
        count = 0
        while True:
            number = reader.line_num + 1
            try:
                number, row = pending.pop() if pending else (number, [_cell(c) for c in next(reader)])
            except StopIteration:
                break
            except csv.Error as e:
                yield ReadError("line", number, msg("Line {number} could not be read as CSV: {problem}.", number=number, problem=e))
                continue
            count += 1
            if bad and (where := next((n for n in range(number, reader.line_num + 1) if n in bad), None)):
                yield ReadError("line", number, msg("Line {where} is not valid {encoding} text (byte {byte}); the file mixes "
                                                    "encodings: save it as UTF-8 to use this row.", where=where,
                                                    encoding=source.encoding, byte=bad[where]))
                continue
            if count % 2000 == 0:
                progress(raw.tell(), source.size)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                yield ReadError(
                    "line", number,
                    msg("Line {number} has {fields} fields but the first line has {columns}; a value holding the "
                        "separator '{separator}' needs quotes around it." if headerless else
                        "Line {number} has {fields} fields but the header has {columns}; a value holding the "
                        "separator '{separator}' needs quotes around it.", number=number, fields=len(row),
                        columns=len(header), separator=delimiter if delimiter != chr(9) else msg("tab")),
                )
                continue
            yield (number, dict(zip(header, row + [""] * (len(header) - len(row)))))
    progress(source.size, source.size)


def _decoded_lines(raw, encoding: str, bad: dict[int, int]) -> Iterator[str]:
    """The file's lines as text, each decoded strictly: a line that is not valid text is noted in `bad`
    (its row is then dropped), never trained with replacement characters. The first line is read within
    the bound for one line; the csv module bounds every cell after it."""
    if encoding.startswith("utf-16"):  # its line ends are two bytes: let the codec find them
        f = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        yield f.readline(MAX_LINE_BYTES + 1)
        yield from f
        return
    for number, line in enumerate(itertools.chain([raw.readline(MAX_LINE_BYTES + 1)], raw), 1):
        try:
            yield line.decode(encoding)
        except UnicodeDecodeError as e:
            bad[number] = e.start + 1
            yield line.decode(encoding, errors="replace")


def _cell(cell: str) -> str:
    return cell.replace("\r\n", "\n") if "\r" in cell else cell


def is_sentence(cell: str) -> bool:
    """Whether a value reads as a sentence (several words, a line break, sentence punctuation at the
    end) rather than a name or a label."""
    cell = cell.strip()
    return "\n" in cell or len(cell.split()) > 4 or len(cell) > 40 or bool(_SENTENCE_END.search(cell))


def is_data_row(cells: list[str]) -> bool:
    """True where a table's first row reads as data rather than column names: every filled cell is a
    sentence or a number (an id), and at least two are filled. One plain name (such as a survey
    export's "Timestamp" before its questions) makes it a header."""
    filled = [c for c in cells if c.strip() and not _NUMBER.match(c)]
    return len([c for c in cells if c.strip()]) >= 2 and bool(filled) and all(map(is_sentence, filled))


def _headerless_note(cells: list[str], header: list[str]) -> Message:
    start = cells[0].strip().splitlines()[0][:40]
    if header == ["prompt", "response"]:
        return msg("The first line holds data, not column names (it starts '{start}'), so it is read as a row and its "
                   "two columns are read as prompt and response. If it is a header after all, give it short column "
                   "names such as prompt,response.", start=start)
    return msg("The first line holds data, not column names (it starts '{start}'), so it is read as a row and its {n} "
               "columns are named column_1 to column_{n}: map them to roles. If it is a header after all, give it "
               "short column names such as prompt,response.", start=start, n=len(header))


def _header(cells: list[str]) -> list[str]:
    names: dict[str, None] = {}  # a dict: its lookups keep a wide header linear
    for i, cell in enumerate(cells, 1):
        name = cell.strip().lstrip("\ufeff") or f"column_{i}"
        names[name if name not in names else f"{name}_{i}"] = None
    return list(names)


def too_wide(name: str, columns: int) -> Message:
    return msg("'{name}' has {columns:,} columns, over the limit of {limit:,}. A data set needs a few (e.g. prompt "
               "and response); keep only those columns, or check that the separator is right.", name=name,
               columns=columns, limit=MAX_COLUMNS)
