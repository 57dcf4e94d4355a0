"""Reading a data file into records (dicts), whatever its type and encoding.

A `DataFile` says what the file is (json, jsonl, csv, tsv, parquet, text, png) and yields its records
one by one with the line (or row) they came from. A broken line or row is yielded as a `ReadError`
and reading goes on, so nothing valid is lost; a file that cannot be read at all raises `DataError`.
JSONL, CSV and Parquet are streamed: memory does not grow with the file.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from engine.data.cards import card_from_dict, card_json_from_png, is_card
from engine.data.encodings import decode_whole, describe, sniff_encoding
from engine.data.errors import DataError
from engine.data.limits import MAX_DEPTH, MAX_LINE_BYTES, human, max_file_bytes, parse_json, too_deep
from engine.data.lines import Item, ReadError, ReadProgress, bounded_lines, too_long
from engine.data.notdata import check_head, check_record
from engine.data.tables import read_csv, too_wide
from engine.i18n import Message, msg

HEAD_BYTES = 64 * 1024
WRAPPER_KEYS = ("data", "instances", "train", "rows", "records", "examples", "samples", "items", "dataset")
CHAT_MARKERS = ("<|im_start|>", "<|user|>", "<|assistant|>", "<|system|>")
__all__ = ["DataFile", "Item", "ReadError", "ReadProgress", "open_data_file", "too_wide"]


@dataclass
class DataFile:
    path: Path
    kind: str
    encoding: str | None
    size: int
    unit: str
    notes: list[str] = field(default_factory=list)

    def items(self, progress: ReadProgress | None = None) -> Iterator[Item | ReadError]:
        return _READERS[self.kind](self, progress or _no_progress)


def _no_progress(done: int, total: int) -> None:
    pass


def open_data_file(path: str | os.PathLike, max_bytes: int | None = None) -> DataFile:
    """Look at a file and say how to read it; raises `DataError` for one that cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise DataError(msg("There is no file at '{path}'. Check the path, or upload the file again.", path=path))
    size = path.stat().st_size
    limit = max_bytes if max_bytes is not None else max_file_bytes()
    if size > limit:
        raise DataError(msg(
            "'{name}' is {size}, over the size limit of {limit}. Split it into smaller "
            "files, or raise the limit with the WORKBENCH_MAX_DATA_MB setting.", name=path.name, size=human(size),
            limit=human(limit)))
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head.strip():
        raise DataError(msg("'{name}' is empty. Choose a file that holds your examples.", name=path.name))
    check_head(head, path.name)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return DataFile(path, "png", None, size, "row")
    if head.startswith(b"PAR1"):
        return DataFile(path, "parquet", None, size, "row")
    encoding = sniff_encoding(head, path.name)
    notes = [note] if (note := describe(encoding)) else []
    text = head.decode(encoding, errors="ignore").lstrip("\ufeff").lstrip()
    ext = path.suffix.lower()
    if ext in (".jsonl", ".ndjson", ".jsonlines"):
        kind = "jsonl"
    elif text.startswith("["):
        kind = "json"
    elif text.startswith("{"):
        kind = "jsonl" if _first_line_is_object(path, encoding) else "json"
    elif ext == ".json":
        kind = "json"
    elif ext in (".csv", ".tsv", ".tab"):
        kind = "csv"
    else:
        kind = "text"
    return DataFile(path, kind, encoding, size, "line" if kind in ("jsonl", "csv", "text") else "row", notes)


def _first_line_is_object(path: Path, encoding: str) -> bool:
    """True where the first line is a whole JSON object and more lines follow: JSON Lines."""
    with open(path, encoding=encoding, errors="replace") as f:
        first = f.readline(MAX_LINE_BYTES)
        rest = f.readline(MAX_LINE_BYTES)
        while rest and not rest.strip():
            rest = f.readline(MAX_LINE_BYTES)
    try:
        return isinstance(parse_json(first.lstrip("\ufeff")), dict) and bool(rest.strip())
    except (json.JSONDecodeError, DataError):
        return False


def _record(value, unit: str, number: int) -> Item | ReadError:
    if isinstance(value, dict):
        return (number, value)
    if isinstance(value, str):
        return (number, {"text": value})
    return ReadError(unit, number, msg("Line {number} is a {kind}, not a record ({{...}} with named fields)." if unit == "line"
                                       else "Row {number} is a {kind}, not a record ({{...}} with named fields).",
                                       number=number, kind=type(value).__name__))


def _read_jsonl(source: DataFile, progress: ReadProgress) -> Iterator[Item | ReadError]:
    wide = source.encoding.startswith("utf-16")
    with open(source.path, "rb") as raw:
        lines = io.TextIOWrapper(raw, encoding=source.encoding, errors="replace") if wide else raw
        done = 0
        for number, line, length in bounded_lines(lines):
            done = raw.tell() if wide else done + length
            if number % 2000 == 0:
                progress(done, source.size)
            if line is None:
                yield too_long("line", number, length)
                continue
            if not wide:
                try:
                    line = line.decode(source.encoding)
                except UnicodeDecodeError as e:
                    yield ReadError("line", number, msg("Line {number} is not valid {encoding} text (byte {byte}); "
                                                        "save the file as UTF-8 to use it.", number=number,
                                                       encoding=source.encoding, byte=e.start + 1))
                    continue
            line = line.lstrip("\ufeff")
            if not line.strip():
                continue
            try:
                value = parse_json(line)
            except json.JSONDecodeError as e:
                yield ReadError("line", number, msg("Line {number} is not valid JSON: {detail} at column {column}.",
                                                   number=number, detail=e.msg, column=e.colno))
                continue
            except DataError as e:
                yield ReadError("line", number, msg("Line {number} cannot be read: {problem}", number=number, problem=e.args[0]))
                continue
            yield _record(value, "line", number)
    progress(source.size, source.size)


def _read_json(source: DataFile, progress: ReadProgress) -> Iterator[Item | ReadError]:
    text = decode_whole(source.path.read_bytes(), source).lstrip("\ufeff")
    if text.lstrip().startswith("["):  # a list streams record by record: memory holds the text and one record
        yield from _list_items(source.path.name, text)
        progress(source.size, source.size)
        return
    try:
        data = parse_json(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            source.unit = "line"
            yield from _read_jsonl(source, progress)  # JSON Lines saved as .json
            return
        raise DataError(_broken_json(source.path.name, e, 0)) from None
    except DataError as e:
        raise DataError(msg("'{name}' cannot be read: {problem}", name=source.path.name, problem=e.args[0])) from None
    progress(source.size, source.size)
    if isinstance(data, dict):
        check_record(data, source.path.name)
        if is_card(data):
            source.notes.append(card_from_dict(data).describe())
        data = _unwrap(data, source)
    if isinstance(data, dict):
        yield (1, data)
        return
    if not isinstance(data, list):
        raise DataError(msg("'{name}' holds a single {kind}, not records. Save a list of records.",
                            name=source.path.name, kind=type(data).__name__))
    for number, value in enumerate(data, 1):
        yield _record(value, "row", number)


def _unwrap(data: dict, source: DataFile):
    """A dict of equally long columns, or a dict holding the records under a key like "data" or
    "instances" (beside metadata such as "type")."""
    columns = list(data.values())
    if len(data) > 1 and all(isinstance(c, list) for c in columns) and len({len(c) for c in columns}) == 1:
        source.notes.append(msg("Read as a table of columns."))
        return [dict(zip(data, values)) for values in zip(*columns)]
    key = next((k for k in WRAPPER_KEYS if isinstance(data.get(k), list) and data[k]), None)
    if not key:
        return data
    source.notes.append(msg("Records read from the '{key}' field (type '{kind}')." if isinstance(data.get("type"), str)
                            else "Records read from the '{key}' field.", key=key, kind=data.get("type")))
    records = data[key]
    if all(isinstance(r, dict) and isinstance(r.get("row"), dict) and "row_idx" in r for r in records):
        source.notes.append(msg("Each record's 'row' was read, as the Hugging Face dataset viewer gives them."))
        return [r["row"] for r in records]
    return records


def _list_items(name: str, text: str) -> Iterator[Item | ReadError]:
    """The records of a JSON list, one at a time; where the list breaks part way, every record before
    the break is kept and the break reported."""
    decoder = json.JSONDecoder()
    pos, number = text.index("[") + 1, 0
    ws = re.compile(r"\s*")
    while True:
        pos = ws.match(text, pos).end()
        if pos < len(text) and text[pos] == "]":
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
            deep = too_deep(value)
        except json.JSONDecodeError as e:
            if number == 0:
                raise DataError(_broken_json(name, e, 0)) from None
            yield ReadError("row", number + 1, _broken_json(name, e, number))
            return
        except RecursionError:
            deep = True
        if deep:
            message = msg("Row {number} of '{name}' holds lists or objects nested more than {depth} levels deep; "
                          "no record shape needs that. Flatten it.", number=number + 1, name=name, depth=MAX_DEPTH)
            if number == 0:
                raise DataError(message)
            yield ReadError("row", number + 1, msg("{problem} The {n} records before it were read.", problem=message,
                                                   n=number))
            return
        number += 1
        yield _record(value, "row", number)
        pos = ws.match(text, pos).end()
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos >= len(text) or text[pos] != "]":
            e = json.JSONDecodeError("Expecting ',' delimiter", text, pos)
            yield ReadError("row", number + 1, _broken_json(name, e, number))
            return


def _broken_json(name: str, e: json.JSONDecodeError, kept: int) -> Message:
    where = {"name": name, "line": e.lineno, "column": e.colno, "detail": e.msg}
    if kept:
        return msg("'{name}' is not valid JSON at line {line}, column {column} ({detail}): the file may be cut short. "
                   "The {kept} records before that point were read; repair the file from there to use the rest.",
                   kept=kept, **where)
    return msg("'{name}' is not valid JSON at line {line}, column {column} ({detail}). The file may be cut short or "
               "have a missing comma or quote; repair it there and try again.", **where)


def _read_parquet(source: DataFile, progress: ReadProgress) -> Iterator[Item | ReadError]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(msg("'{name}' could not be read as Parquet ({detail}). Save it again, or export it as JSONL.",
                            name=source.path.name, detail=str(e))) from None
    total, number = parquet.metadata.num_rows, 0
    for batch in parquet.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            number += 1
            yield (number, record)
        progress(number, total)


def _read_text(source: DataFile, progress: ReadProgress) -> Iterator[Item | ReadError]:
    """Blocks separated by blank lines; where chat markers appear, a new block starts only at a marker."""
    text = decode_whole(source.path.read_bytes(), source).lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    chat = any(marker in text for marker in CHAT_MARKERS)
    splitter = re.compile(r"\n[ \t]*\n\s*(?=<\|)" if chat else r"\n[ \t]*\n\s*")
    start, line, counted = 0, 1, 0
    for match in [*splitter.finditer(text), None]:
        end = match.start() if match else len(text)
        segment = text[start:end]
        if segment.strip():
            offset = start + len(segment) - len(segment.lstrip())
            line += text.count("\n", counted, offset)
            counted = offset
            yield too_long("line", line, len(segment)) if len(segment) > MAX_LINE_BYTES else (line, {"text": segment.strip()})
        if match:
            start = match.end()
    progress(source.size, source.size)


def _read_png(source: DataFile, progress: ReadProgress) -> Iterator[Item | ReadError]:
    record = card_json_from_png(source.path, source.notes)
    if is_card(record):
        source.notes.append(card_from_dict(record).describe())
    yield (1, record)


_READERS = {
    "jsonl": _read_jsonl, "json": _read_json, "csv": read_csv, "parquet": _read_parquet,
    "text": _read_text, "png": _read_png,
}
