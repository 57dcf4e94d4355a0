"""Files that are not a data set, each named with what to do instead: a Git LFS or git-annex pointer
(the data itself was never fetched), a web page saved in place of the file, a lorebook (context for
chat), and a table none of whose columns holds a conversation or text.
"""

from __future__ import annotations

import re

from engine.data.detect import named
from engine.data.errors import DataError
from engine.data.formats import known_shapes
from engine.data.limits import human
from engine.data.lorebook import is_lorebook, lorebook_from_dict
from engine.data.tables import is_sentence
from engine.i18n import joined, msg

_LFS = re.compile(rb"\Aversion https://git-lfs\.github\.com/spec/v\d+\s*\n(?:.*\n)*?oid (\w+):(\w+)\s*\nsize (\d+)", re.M)
_ANNEX = re.compile(rb"\A[./]*\.git/annex/objects/\S+\s*\Z|\A/annex/objects/\S+\s*\Z")
_HTML = re.compile(rb"\A\s*(<!doctype html|<html[\s>])", re.I)
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".jsonlines", ".csv", ".tsv", ".tab", ".parquet")


def check_head(head: bytes, name: str) -> None:
    """Raise `DataError` where the start of a file shows it is a pointer to the data or a web page."""
    if len(head) < 1024 and (lfs := _LFS.match(head)):
        raise DataError(msg(
            "'{name}' is a Git LFS pointer, not the data: it only names the real file ({kind} {digest}..., {size}), "
            "which was never downloaded. Fetch the real file with `git lfs pull` in the repository it came from (or "
            "use the site's download link, not the raw pointer), then choose it again.", name=name,
            kind=lfs[1].decode(), digest=lfs[2].decode()[:12], size=human(int(lfs[3]))))
    if len(head) < 1024 and _ANNEX.match(head):
        raise DataError(msg(
            "'{name}' is a git-annex pointer, not the data. Fetch the real file with `git annex get {name}` in "
            "the repository it came from, then choose it again.", name=name))
    if _HTML.match(head) and name.lower().endswith(DATA_SUFFIXES):  # a .txt or .html of HTML may be meant as text
        raise DataError(msg(
            "'{name}' is a web page (HTML), not a data file: the page showing the file was saved, not the file. "
            "Download the file itself (on GitHub the 'Raw' or download button; on Hugging Face the download "
            "arrow beside the file) and choose it again.", name=name))


def check_record(record: dict, name: str) -> None:
    """Raise `DataError` where a JSON file's one object is a lorebook rather than records."""
    if is_lorebook(record):
        book = lorebook_from_dict(record)
        what = msg("a NovelAI lorebook") if "lorebookVersion" in record else msg("a SillyTavern World Info file")
        raise DataError(msg(
            "'{name}' is {what}, a {book}: background facts that chat adds to the prompt when their keywords come "
            "up. It is context for chatting with a character, not training examples. To use it, link it to the "
            "character in SillyTavern (exporting the card then embeds it) and open that card in Chat. To train, "
            "bring conversations: a SillyTavern chat export (.jsonl), or the character card itself, whose example "
            "dialogues become rows.", name=name, what=what, book=book.describe()))


def no_known_shape(name: str, records: list[dict], columns: list[str]) -> str:
    """The message for records that fit no known shape: what each column holds, and what to do."""
    kinds = {c: _kind([r.get(c) for r in records if c in r]) for c in columns}
    texts = [c for c, k in kinds.items() if k == "text"]
    others = joined((msg("{column} ({kind})", column=c, kind=k) for c, k in kinds.items() if k != "text"), ", ")
    shown = (msg("Columns seen: {columns}; what they hold: {others}.", columns=named(columns), others=others)
             if others and len(columns) <= 20 else msg("Columns seen: {columns}.", columns=named(columns)))
    if not texts:
        return msg("'{name}' has no column that holds a conversation or text to train on. {shown} A data set for "
                   "fine-tuning needs, in each row, a prompt and a reply (e.g. prompt,response or instruction,output), "
                   "a conversation (a messages list), or a text column; check that this is the file you meant. "
                   "Known shapes: {shapes}.", name=name, shown=shown, shapes=known_shapes())
    if len(texts) > 1:
        example = msg("e.g. the pairs format with prompt <- {a} and response <- {b} (command line: --format pairs "
                      "--map prompt={a} --map response={b})", a=texts[0], b=texts[1])
    else:
        example = msg("e.g. the text format with text <- {a} (command line: --format text --map text={a})", a=texts[0])
    return msg("The records of '{name}' have a shape I don't know. {shown} Columns that hold text: {texts}. Choose a "
               "format and map your columns to its fields, {example}, or rename them. Known shapes: {shapes}.",
               name=name, shown=shown, texts=", ".join(texts), example=example, shapes=known_shapes())


def _kind(values: list) -> str:
    filled = [v for v in values if v not in (None, "")]
    if not filled:
        return msg("empty")
    if all(isinstance(v, (int, float, bool)) or (isinstance(v, str) and _number(v)) for v in filled):
        return msg("numbers")
    if any(isinstance(v, (list, dict)) for v in filled):
        return msg("lists or objects")
    return "text" if sum(1 for v in filled if is_sentence(str(v))) * 2 >= len(filled) else msg("short labels")


def _number(value: str) -> bool:
    try:
        float(value.replace(",", ""))
    except ValueError:
        return False
    return True
