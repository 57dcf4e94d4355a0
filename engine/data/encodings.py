"""Which text encoding a data file is in: the Unicode ones by their marks, then UTF-8, then Windows-1252.

A file that holds binary data is refused here, before any reader sees it.
"""

from __future__ import annotations

import codecs

from engine.data.errors import DataError


def sniff_encoding(head: bytes, name: str) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    even, odd = head[0::2], head[1::2]
    if len(head) >= 4 and odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if len(head) >= 4 and even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    binary = DataError(
        f"'{name}' does not look like a text file: it holds binary data. Choose a JSON, JSONL, CSV, TSV, "
        "Parquet, plain text or character card PNG file."
    )
    if b"\0" in head:
        raise binary
    for encoding in ("utf-8", "cp1252"):
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f")
        if controls > 0.01 * max(len(text), 1):
            raise binary
        return encoding
    raise binary
