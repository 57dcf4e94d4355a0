"""CSV and TSV files: the separator, the header line, and one record per row (streamed)."""

from __future__ import annotations

import csv
import io
from typing import Iterator

from engine.data.errors import DataError
from engine.data.limits import MAX_COLUMNS, MAX_LINE_BYTES, human
from engine.data.lines import Item, ReadError, ReadProgress


def read_csv(source, progress: ReadProgress) -> Iterator[Item | ReadError]:
    csv.field_size_limit(MAX_LINE_BYTES)
    with open(source.path, "rb") as raw:
        f = io.TextIOWrapper(raw, encoding=source.encoding, errors="replace", newline="")
        first = f.readline(MAX_LINE_BYTES + 1)
        if len(first) > MAX_LINE_BYTES:
            raise DataError(f"The header line of '{source.path.name}' is over the limit of {human(MAX_LINE_BYTES)}. "
                            "Check that it is a table with a header line naming its columns.")
        delimiter = "\t" if source.path.suffix.lower() in (".tsv", ".tab") else max(",\t;", key=first.count)
        reader = csv.reader(f, delimiter=delimiter)
        header = _header(next(csv.reader([first], delimiter=delimiter), []))
        if not header:
            raise DataError(f"'{source.path.name}' has no header line naming its columns. Add one, e.g. prompt,response.")
        if len(header) > MAX_COLUMNS:
            raise DataError(too_wide(source.path.name, len(header)))
        count = 0
        while True:
            number = reader.line_num + 2
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                yield ReadError("line", number, f"Line {number} could not be read as CSV: {e}.")
                continue
            count += 1
            if count % 2000 == 0:
                progress(raw.tell(), source.size)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                yield ReadError(
                    "line", number,
                    f"Line {number} has {len(row)} fields but the header has {len(header)}; a value holding the "
                    f"separator '{delimiter if delimiter != chr(9) else 'tab'}' needs quotes around it.",
                )
                continue
            yield (number, dict(zip(header, row + [""] * (len(header) - len(row)))))
    progress(source.size, source.size)


def _header(cells: list[str]) -> list[str]:
    names: dict[str, None] = {}  # a dict: its lookups keep a wide header linear
    for i, cell in enumerate(cells, 1):
        name = cell.strip().lstrip("\ufeff") or f"column_{i}"
        names[name if name not in names else f"{name}_{i}"] = None
    return list(names)


def too_wide(name: str, columns: int) -> str:
    return (f"'{name}' has {columns:,} columns, over the limit of {MAX_COLUMNS:,}. A data set needs a few (e.g. prompt "
            "and response); keep only those columns, or check that the separator is right.")
