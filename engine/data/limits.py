"""The bounds on every data file, in one place (documented in docs/data.md and the README).

Each bound keeps one hostile or careless file from taking the machine's memory or time: a record
longer than any model can train on, a table wider than any data set needs, JSON nested deeper than
any record shape, a character card chunk larger than any card.
"""

from __future__ import annotations

import json
import os

from engine.data.errors import DataError
from engine.i18n import msg

MAX_FILE_MB = 1024  # the default; WORKBENCH_MAX_DATA_MB changes it
MAX_LINE_BYTES = 4 * 1024 * 1024  # one line of JSONL, CSV or text, and one record's text
MAX_COLUMNS = 1000  # columns of a table (CSV header, keys of the records)
MAX_DEPTH = 100  # lists and objects inside each other in one JSON record
MAX_CARD_CHUNK_BYTES = 8 * 1024 * 1024  # the text chunk holding a character card in a PNG


def max_file_bytes() -> int:
    return int(float(os.environ.get("WORKBENCH_MAX_DATA_MB", MAX_FILE_MB)) * 1024 * 1024)


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """True where `value` holds lists or objects more than `limit` levels deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


def parse_json(text: str):
    """A JSON value; raises `DataError` for one nested more than `MAX_DEPTH` levels deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    else:
        # A value cannot nest deeper than its text has brackets (a fast count rules out almost every record).
        if text.count("[") + text.count("{") <= MAX_DEPTH or not too_deep(value):
            return value
    raise DataError(msg("it holds lists or objects nested more than {depth} levels deep; no record shape "
                        "needs that. Flatten it.", depth=MAX_DEPTH))
