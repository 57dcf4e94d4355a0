"""Which text encoding a data file is in: the Unicode ones by their marks, then UTF-8, then the Chinese
ones (GB18030, which holds GBK and GB2312, and Big5), then Windows-1252.

A Chinese encoding is taken only where the bytes decode without error into text that is mostly
Chinese characters in runs, as real Chinese text is; which of GB18030 and Big5 it is, charset_normalizer
decides from the characters' frequencies. East Asian text in neither is refused, its encoding named;
it is never read as Windows-1252 and trained garbled. A file that holds binary data is refused here,
before any reader sees it.
"""

from __future__ import annotations

import codecs
import re

from engine.data.errors import DataError
from engine.i18n import msg

CHINESE = {"gb18030": "gb18030 (GBK) Chinese", "big5": "Big5 Chinese", "cp950": "Big5 (cp950) Chinese"}
_FAMILIES = {"gb18030": ("gb18030",), "gbk": ("gb18030",), "gb2312": ("gb18030",), "hz": ("gb18030",),
             "big5": ("big5", "cp950"), "cp950": ("big5", "cp950"), "big5hkscs": ("big5", "cp950")}
MULTIBYTE = {*_FAMILIES, "shift_jis", "cp932", "euc_jp", "euc_jis_2004", "euc_jisx0213", "shift_jis_2004",
             "shift_jisx0213", "iso2022_jp", "iso2022_kr", "euc_kr", "cp949", "johab"}
_HIGH_RUN = re.compile(rb"[\x80-\xff]{2,}")
_HAN = re.compile(r"[\u00b7\u2010-\u206f\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def describe(encoding: str) -> str:
    """The note for a file read in `encoding` (none for UTF-8)."""
    if encoding in ("utf-8", "utf-8-sig"):
        return ""
    return msg("Read as {encoding} text.", encoding=CHINESE.get(encoding, encoding))


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
    if b"\0" in head:
        raise _binary(name)
    text = _decoded(head, "utf-8")
    if text is None:
        encoding = _east_asian(head, name)
        if encoding:
            return encoding
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if not head[:e.start].isascii():  # UTF-8 letters, then bytes that are not
                raise _mixed(name, "utf-8", head, e.start) from None
        text, encoding = _decoded(head, "cp1252"), "cp1252"
    else:
        encoding = "utf-8"
    if text is None or sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f") > 0.01 * max(len(text), 1):
        raise _binary(name)
    return encoding


def _decoded(data: bytes, encoding: str) -> str | None:
    """`data` decoded strictly (a character cut at the end is fine), or None."""
    try:
        return codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        return None


def _east_asian(head: bytes, name: str) -> str | None:
    """gb18030, big5 or cp950 where `head` is Chinese text in it; None where it is not East Asian text
    (most bytes above 127 stand alone, as in Windows-1252); refused where it is East Asian text in another
    encoding (Shift-JIS and EUC-KR decode as gb18030 without error, so the characters' frequencies decide)."""
    high = sum(1 for b in head if b > 127)
    if not high or sum(len(m) for m in _HIGH_RUN.findall(head)) < 0.6 * high:
        return None
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    found = best.encoding if best else None
    if found not in MULTIBYTE:
        return None
    for encoding in _FAMILIES.get(found, ()):
        if (text := _decoded(head, encoding)) is not None and _mostly_han(text):
            return encoding
    seen = msg("{encoding} text ({language})", encoding=found, language=best.language) if best.language != "Unknown" \
        else msg("{encoding} text", encoding=found)
    raise DataError(
        msg("'{name}' is not UTF-8: it looks like {seen}. Only UTF-8, UTF-16, GB18030/GBK, Big5 "
            "and Windows-1252 are read, so that no text is trained garbled. Save the file as "
            "UTF-8 (in Excel: Save As, 'CSV UTF-8'; in an editor: Save with encoding UTF-8) and "
            "try again.", name=name, seen=seen)
    )


def _mostly_han(text: str) -> bool:
    wide = [c for c in text if ord(c) > 127]
    return bool(wide) and sum(1 for c in wide if _HAN.match(c)) >= 0.9 * len(wide)


def _binary(name: str) -> DataError:
    return DataError(
        msg("'{name}' does not look like a text file: it holds binary data. Choose a JSON, "
            "JSONL, CSV, TSV, Parquet, plain text or character card PNG file.", name=name)
    )


def decode_whole(data: bytes, source) -> str:
    """A whole file's text in `source.encoding`, strictly. Where the head was plain ASCII and a later
    part is not UTF-8, the encoding is sniffed again there (and `source` updated, with a note)."""
    try:
        return data.decode(source.encoding)
    except UnicodeDecodeError as e:
        failed = e
    if not data[:failed.start].isascii():
        raise _mixed(source.path.name, source.encoding, data, failed.start)
    encoding = sniff_encoding(data[failed.start:failed.start + 64 * 1024], source.path.name)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise _mixed(source.path.name, encoding, data, e.start) from None
    source.encoding = encoding
    source.notes[:] = [n for n in source.notes if not n.startswith("Read as ")] + [describe(encoding)]  # never utf-8 here
    return text


def _mixed(name: str, encoding: str, data: bytes, at: int) -> DataError:
    line = data.count(b"\n", 0, at) + 1
    return DataError(
        msg("'{name}' is not valid {encoding} text at line {line} (byte {at}): parts of it are "
            "in different encodings. Save the whole file as UTF-8 and try again.", name=name, encoding=encoding, line=line, at=at + 1)
    )
