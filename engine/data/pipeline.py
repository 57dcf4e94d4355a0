"""From a file to conversations: read, detect, convert, apply the rules, report.

One pass over the file: the first records decide the shape, then every record streams through
conversion and the rules. Kept rows are collected, or handed to a sink (saving a large file never
holds it in memory), with the first few kept beside their raw records for the preview.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.data.convert import Malformed, check_mapping, convert
from engine.data.detect import SAMPLE, Detection, columns_of, detect
from engine.data.errors import DataError
from engine.data.images import image_of
from engine.data.formats import RECORD_FORMATS, TEXT_RECORD_FORMATS
from engine.data.limits import MAX_COLUMNS
from engine.data.notdata import no_known_shape
from engine.data.readers import DataFile, ReadError, ReadProgress, open_data_file, too_wide
from engine.data.rules import DataReport, Rules, check, tidy
from engine.i18n import msg
from engine.workspace import BadName


@dataclass(frozen=True)
class Options:
    format: str | None = None  # None: detected
    mapping: dict[str, str] = field(default_factory=dict)  # overrides of the detected mapping; "" unsets
    system_prompt: str = ""  # given to every conversation without a system turn
    rules: Rules = Rules()
    card_user: str = "User"  # the name {{user}} becomes in a character card's example dialogues
    text_only: bool = False  # a file with images: use its text-only rows
    keep_duplicates: bool = False  # keep a conversation that is the same as an earlier one
    all_branches: bool = False  # message trees: every branch ending in a reply, not only the top-ranked one


@dataclass
class Sample:
    number: int
    record: dict | None  # the raw record, where one record made the row
    row: dict


@dataclass
class Inspection:
    source: DataFile
    detection: Detection
    format: str
    mapping: dict[str, str]
    options: Options
    report: DataReport
    rows: list[dict]
    samples: list[Sample]

    @property
    def kind(self) -> str:
        return "text" if self.format in TEXT_RECORD_FORMATS else "conversations"

    def as_dict(self) -> dict:
        """What `python -m engine data inspect --json` prints."""
        return {
            "file": str(self.source.path), "file_type": self.source.kind, "encoding": self.source.encoding,
            "format": self.format, "confidence": self.detection.confidence if self.format == self.detection.format else None,
            "evidence": self.detection.evidence, "candidates": dict(self.detection.candidates),
            "columns": self.detection.columns, "mapping": self.mapping, "kind": self.kind,
            **self.report.as_dict(),
            "example": (self.samples[0].row.get("messages") or self.samples[0].row) if self.samples else None,
        }


def _open(path, max_bytes: int | None, progress: ReadProgress | None):
    source = open_data_file(path, max_bytes)
    items = source.items(progress)
    head = list(itertools.islice(items, SAMPLE))
    records = [item[1] for item in head if not isinstance(item, ReadError)]
    if not records:
        errors = [item.message for item in head if isinstance(item, ReadError)]
        raise DataError(msg("Nothing in '{name}' could be read. {first}", name=source.path.name, first=errors[0])
                        if errors else msg("Nothing in '{name}' could be read.", name=source.path.name))
    if len(columns := columns_of(records)) > MAX_COLUMNS:
        raise DataError(too_wide(source.path.name, len(columns)))
    return source, head, items, detect(records)


def peek(path: str | os.PathLike, max_bytes: int | None = None) -> Detection:
    """The detected shape and the columns, from the first records only (for choosing a mapping)."""
    return _open(path, max_bytes, None)[3]


def inspect(path: str | os.PathLike, options: Options = Options(), *, sink: Callable[[dict], None] | None = None,
            keep_rows: bool | int = True, progress: ReadProgress | None = None, max_bytes: int | None = None,
            samples: int = 5, preference_sink: Callable[[dict], None] | None = None) -> Inspection:
    """Read `path` and report what would be trained; raises `DataError` for a file that cannot be used.

    `keep_rows`: True keeps every kept row in `rows`, False none, a number an even random sample of that many.
    `preference_sink` receives each preference record kept for preference training (see `preference`).
    """
    source, head, items, detection = _open(path, max_bytes, progress)
    format_id = _choose_format(options.format, detection, source.path.name, head)
    mapping = {**detection.mappings.get(format_id, {}), **options.mapping}
    mapping = {k: v for k, v in mapping.items() if v}
    check_mapping(format_id, mapping, detection.columns)

    report = DataReport(unit=source.unit, notes=source.notes)
    last: list = [None, None]  # the number and raw record that conversion took last

    def good_items():
        for item in itertools.chain(head, items):
            if isinstance(item, ReadError):
                report.drop("unreadable", item.number, item.message)
                continue
            last[:] = item
            yield item

    kept, shown, sampler, seen = [], [], random.Random(0), {}
    text_only = options.text_only or not detection.images
    for number, row in convert(good_items(), format_id, mapping, options.card_user, options.all_branches):
        if isinstance(row, Malformed):
            report.drop(row.reason, number, msg("Line {number}: {problem}" if report.unit == "line" else "Row {number}: {problem}",
                                                number=number, problem=row.args[0]))
            continue
        preference = row.pop("preference", None)
        row = tidy(row, options.system_prompt)
        record = last[1] if last[0] == number else None
        if image := image_of(record, row):
            report.drop("has_image", number, msg("Line {number} holds {image}; this app trains text models." if report.unit == "line"
                                                    else "Row {number} holds {image}; this app trains text models.",
                                                    number=number, image=image))
            continue
        reason = check(row, options.rules) or (None if text_only else "text_only_row")
        if reason:
            report.drop(reason, number)
            continue
        if not options.keep_duplicates:
            key = _identity(row, preference)
            if (first := seen.get(key)) is not None:
                report.drop("duplicate", number, msg(
                    "Line {number} is the same conversation as line {first}, which is kept." if report.unit == "line"
                    else "Row {number} is the same conversation as row {first}, which is kept.", number=number, first=first))
                continue
            seen[key] = number
        if preference:
            report.preference += 1
            if preference_sink:
                preference_sink(with_system(preference, options.system_prompt))
            if preference.get("label") is False:
                report.drop("undesirable", number)
                continue
        report.keep()
        if len(shown) < samples:
            shown.append(Sample(number, record, row))
        if sink:
            sink(row)
        if keep_rows is True or len(kept) < keep_rows:
            kept.append(row)
        elif keep_rows and (slot := sampler.randrange(report.rows_kept)) < keep_rows:
            kept[slot] = row
    report.notes += _notes(format_id, detection, report, text_only)
    return Inspection(source, detection, format_id, mapping, options, report, kept, shown)


def _identity(row: dict, preference: dict | None) -> int:
    """Equal for rows that train the same thing (a hash: fast, and the rows need not be kept)."""
    if "messages" not in row:
        return hash(row["text"])
    pref = tuple(_turns(v) if isinstance(v, list) else v for v in preference.values()) if preference else None
    return hash((_turns(row["messages"]), row.get("tools"), pref))


def _turns(messages: list[dict]) -> tuple:
    return tuple((m["role"], m["content"], repr(m) if len(m) > 2 else None) for m in messages)


def with_system(preference: dict, system_prompt: str) -> dict:
    prompt = preference["prompt"]
    if system_prompt.strip() and not any(m["role"] == "system" for m in prompt):
        return {**preference, "prompt": [{"role": "system", "content": system_prompt.strip()}, *prompt]}
    return preference




def _notes(format_id: str, detection: Detection, report: DataReport, text_only: bool) -> list[str]:
    """What a person must know about this shape of data, in plain sentences."""
    notes = []
    if format_id == "preference":
        notes.append(msg("Preference data: supervised training uses the chosen replies; {n:,} pair of chosen and "
                         "rejected replies kept with the data set for preference training (DPO, ORPO)."
                         if report.preference == 1 else
                         "Preference data: supervised training uses the chosen replies; {n:,} pairs of chosen and "
                         "rejected replies kept with the data set for preference training (DPO, ORPO).",
                         n=report.preference))
    elif format_id == "kto":
        notes.append(msg("KTO data: only the desirable replies train in supervised mode; {n:,} reply, desirable or "
                         "not, kept with the data set for preference training (KTO)." if report.preference == 1 else
                         "KTO data: only the desirable replies train in supervised mode; {n:,} replies, desirable or "
                         "not, kept with the data set for preference training (KTO).", n=report.preference))
    if detection.images or report.dropped["has_image"]:
        notes.append(msg("This file holds images, and this app trains text models: rows with an image are left out "
                         "(an image placeholder is never trained as text). Its text-only rows are used, as chosen."
                         if text_only else
                         "This file holds images, and this app trains text models: rows with an image are left out "
                         "(an image placeholder is never trained as text). Its text-only rows are used only if you "
                         "choose so (use the text-only rows; --text-only)."))
    if report.dropped["duplicate"]:
        notes.append(msg("Exact duplicates are left out (the first copy is kept); keep them with keep duplicates "
                         "(--keep-duplicates)."))
    return notes


def _choose_format(chosen: str | None, detection: Detection, name: str, head: list) -> str:
    if chosen:
        if chosen not in RECORD_FORMATS:
            raise DataError(msg("'{chosen}' is not a known format. Choose one of: {formats}.", chosen=chosen,
                                formats=", ".join(RECORD_FORMATS)))
        return chosen
    if detection.format is None:
        raise DataError(no_known_shape(name, [item[1] for item in head if not isinstance(item, ReadError)], detection.columns))
    return detection.format


def read_rows(path: Path) -> list[dict]:
    """Rows of a saved dataset's data.jsonl."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_conversations(ref: str | os.PathLike, workspace=None) -> list[dict]:
    """Training rows ({"messages": [...]}, or {"text": ...} for plain text) from a dataset saved in the
    workspace (by name), a dataset folder, or a file of any supported shape (detected)."""
    try:
        saved = workspace.dataset_path(str(ref)) / "data.jsonl" if workspace is not None else None
    except BadName:  # not a name, so a path
        saved = None
    if saved is not None and saved.is_file():
        return read_rows(saved)
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "data.jsonl").is_file():
        return read_rows(path / "data.jsonl")
    if path.is_file():
        inspection = inspect(path)
        if not inspection.rows:
            raise DataError(msg("'{name}' holds nothing to train on: {report}", name=path.name,
                                report=inspection.report.summary()))
        return inspection.rows
    raise DataError(msg(
        "'{ref}' is neither a dataset saved in {folder} nor a file. Import it on the Dataset tab (or with "
        "`python -m engine data import FILE --name NAME`), or give the path to a data file."
        if workspace is not None else
        "'{ref}' is neither a dataset saved nor a file. Import it on the Dataset tab (or with "
        "`python -m engine data import FILE --name NAME`), or give the path to a data file.",
        ref=ref, folder=workspace.datasets if workspace is not None else ""))
