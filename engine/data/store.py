"""Data sets in the workspace: `datasets/<name>/data.jsonl` (one row a line) and `meta.json` (the
source file, format, mapping, template choice, counts), written atomically; and the tokenised form
training uses, cached on disk with the `datasets` library under a fingerprint of the rows, the
tokenizer, its template and `max_seq_length`, so a second use loads instead of tokenising again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from engine.data.errors import DataError
from engine.data.pipeline import Inspection, Options, inspect, read_rows
from engine.data.preference import KIND
from engine.data.readers import ReadProgress
from engine.data.render import encode
from engine.errors import plain
from engine.files import atomic_dir, now, read_json, write_json
from engine.i18n import msg
from engine.workspace import BadName

log = logging.getLogger(__name__)

PREFERENCE = "preference.jsonl"  # beside data.jsonl, for preference training (DPO, ORPO, KTO)
TOKENIZED = ".tokenized"  # the rendered data sets, by fingerprint: not a data set (no meta.json), deletable
_CACHE_VERSION = 3  # 3: Mistral tool-call ids of 9 letters and digits, JSON-string arguments as objects (render)


class SourceFile(BaseModel):
    file: str
    path: str
    bytes: int
    type: str
    encoding: str | None


class Detected(BaseModel):
    format: str | None
    confidence: float
    evidence: list[str]


class Counts(BaseModel):
    rows_in: int
    rows_kept: int
    dropped: dict[str, int]


class PreferenceFile(BaseModel):
    """The preference records saved beside the supervised rows, in trl's preference format."""

    file: str = PREFERENCE
    kind: str  # "pairs": {prompt, chosen, rejected}; "kto": {prompt, completion, label}
    rows: int


class DatasetMeta(BaseModel):
    """A saved data set's `meta.json`: where it came from, how it was read, what was kept."""

    name: str
    created: str
    source: SourceFile
    format: str
    detected: Detected
    mapping: dict[str, str]
    kind: str
    system_prompt: str = ""
    rules: dict[str, int | bool]
    template: dict[str, str]  # {"choice": model|chatml|alpaca, "fallback": chatml|alpaca}
    counts: Counts
    dropped_rows: dict[str, list[int]] = {}
    errors: list[dict] = []
    notes: list[str] = []
    fingerprint: str
    preference: PreferenceFile | None = None


@dataclass(frozen=True)
class SavedDataset:
    """A folder of datasets/: its record, or why it cannot be read and what to do."""

    name: str
    meta: DatasetMeta | None
    problem: str = ""
    trainable: bool = True  # its data.jsonl is there

    @property
    def label(self) -> str:
        return f"{self.name} (damaged: {self.problem})" if self.problem else self.name

    def row(self) -> dict:
        """Its line in the Dataset tab's table of saved data sets."""
        m = self.meta
        if m is None:
            return {"name": self.name, "format": "damaged", "rows": None, "from": self.problem, "template": "", "created": ""}
        return {"name": m.name, "format": m.format, "rows": m.counts.rows_kept, "from": m.source.file,
                "template": m.template.get("choice", ""), "created": m.created}


def dataset_folder(workspace, name: str) -> Path:
    """The folder of the data set `name`; raises `DataError` for a name that cannot be one."""
    try:
        return workspace.dataset_path(name)
    except BadName as e:
        raise DataError(str(e)) from None


def import_file(workspace, name: str, path: str | os.PathLike, options: Options = Options(), *,
                template: str = "model", fallback: str = "chatml", overwrite: bool = False,
                progress: ReadProgress | None = None, max_bytes: int | None = None) -> tuple[Path, Inspection]:
    """Read `path` and save what it keeps as the data set `name`; streamed, so memory stays flat.
    A disk that fills up (or a folder the app may not write) leaves the old data set as it was."""
    target = dataset_folder(workspace, name)
    if target.exists() and not overwrite:
        raise DataError(msg("A data set named '{name}' already exists. Choose another name, or replace it.", name=name))
    digest = hashlib.sha256()
    try:
        with atomic_dir(target) as tmp:
            with open(tmp / "data.jsonl", "w", encoding="utf-8") as f, open(tmp / PREFERENCE, "w", encoding="utf-8") as pf:
                def sink(row: dict) -> None:
                    line = json.dumps(row, ensure_ascii=False) + "\n"
                    f.write(line)
                    digest.update(line.encode("utf-8"))

                inspection = inspect(path, options, sink=sink, keep_rows=False, progress=progress, max_bytes=max_bytes,
                                     preference_sink=lambda record: pf.write(json.dumps(record, ensure_ascii=False) + "\n"))
            if not inspection.report.preference:
                (tmp / PREFERENCE).unlink()
            if not inspection.report.rows_kept:
                raise DataError(msg("Nothing was saved: no row of '{name}' can be trained on. {summary}", name=Path(path).name, summary=inspection.report.summary()))
            meta = _meta(name, inspection, template, fallback, digest.hexdigest())
            write_json(tmp / "meta.json", meta.model_dump())
    except OSError as e:
        sentence = plain(e)
        if sentence is None:
            raise
        log.warning("saving the data set %s failed", name, exc_info=True)
        raise DataError(msg("The data set '{name}' was not saved: {sentence} Nothing half-written was kept.", name=name, sentence=sentence)) from None
    return target, inspection


def _meta(name: str, inspection: Inspection, template: str, fallback: str, fingerprint: str) -> DatasetMeta:
    source, report, options = inspection.source, inspection.report, inspection.options
    return DatasetMeta(
        name=name, created=now(),
        source=SourceFile(file=source.path.name, path=str(source.path.resolve()), bytes=source.size,
                          type=source.kind, encoding=source.encoding),
        format=inspection.format,
        detected=Detected(format=inspection.detection.format, confidence=inspection.detection.confidence,
                          evidence=inspection.detection.evidence),
        mapping=inspection.mapping, kind=inspection.kind, system_prompt=options.system_prompt,
        rules={"min_chars": options.rules.min_chars, "require_system": options.rules.require_system,
               "text_only": options.text_only, "keep_duplicates": options.keep_duplicates,
               "all_branches": options.all_branches},
        template={"choice": template, "fallback": fallback},
        counts=Counts(rows_in=report.rows_in, rows_kept=report.rows_kept, dropped=dict(report.dropped)),
        dropped_rows=report.dropped_rows, errors=report.errors[:100], notes=report.notes, fingerprint=fingerprint,
        preference=PreferenceFile(kind=KIND[inspection.format], rows=report.preference) if report.preference else None,
    )


def _saved(folder: Path) -> SavedDataset | None:
    meta_file, data = folder / "meta.json", folder / "data.jsonl"
    if not (meta_file.exists() or data.exists()):
        return None  # not a data set
    repair = "import its file again under this name, with Replace"
    if not data.is_file():
        return SavedDataset(folder.name, None, f"its data.jsonl is missing; {repair}, or delete the folder", False)
    try:
        meta = DatasetMeta.model_validate(read_json(meta_file))
    except (OSError, ValueError) as e:  # missing, cut, empty, not JSON, or the wrong fields
        log.warning("the meta.json of data set %s cannot be read: %s", folder.name, e)
        return SavedDataset(folder.name, None, f"its meta.json is missing or damaged; it still trains, and to repair "
                                                f"its record {repair}")
    return SavedDataset(folder.name, meta)


def list_datasets(workspace) -> list[SavedDataset]:
    """Every saved data set, by name; a damaged one says what is wrong with it and what to do."""
    found = (_saved(folder) for folder in sorted(Path(workspace.datasets).iterdir())
             if folder.is_dir() and not folder.name.startswith("."))  # .tokenized and unfinished saves
    return [saved for saved in found if saved]


def read_meta(workspace, name: str) -> DatasetMeta:
    folder = dataset_folder(workspace, name)
    saved = _saved(folder) if folder.is_dir() else None
    if saved is None:
        raise DataError(msg("There is no saved data set named '{name}'.", name=name))
    if saved.meta is None:
        raise DataError(msg("The data set '{name}' is damaged: {problem}.", name=name, problem=saved.problem))
    return saved.meta


def read_dataset(workspace, name: str) -> list[dict]:
    read_meta(workspace, name)
    return read_rows(dataset_folder(workspace, name) / "data.jsonl")


def read_preference(workspace, name: str) -> tuple[str, list[dict]]:
    """A saved data set's preference records and their kind ("pairs" or "kto"), for preference training."""
    meta = read_meta(workspace, name)
    if meta.preference is None:
        raise DataError(msg("The data set '{name}' holds no preference data (chosen and rejected replies, or KTO "
                            "labels); import a preference file to train with DPO, ORPO or KTO.", name=name))
    return meta.preference.kind, read_rows(dataset_folder(workspace, name) / meta.preference.file)


def fingerprint(rows: list[dict], tokenizer) -> str:
    """Changes with any row, the tokenizer's vocabulary or its (training) chat template."""
    h = hashlib.sha256(f"{_CACHE_VERSION}|{tokenizer.eos_token}|".encode())
    h.update((tokenizer.chat_template or "").encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for row in rows:
        h.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:24]


def token_cache(workspace) -> Path:
    """Where `encode_rows` keeps rendered data sets for the plan and the training worker."""
    return Path(workspace.datasets) / TOKENIZED


def encode_rows(rows: list[dict], tokenizer, cache_dir: str | os.PathLike | None = None) -> dict[str, list]:
    """Every row as `render.encode` renders it, whole: {"input_ids": [...], "assistant_masks": [...]}
    (1 = trained), a list entry a row. With `cache_dir`, the result is kept there with the `datasets`
    library under its fingerprint and loaded from there the next time: a second plan or run of the
    same data set with the same tokenizer does not tokenise again."""
    cached = Path(cache_dir) / fingerprint(rows, tokenizer) if cache_dir and rows else None
    if cached is not None and (cached / "dataset_info.json").is_file():
        from datasets import load_from_disk

        try:
            return load_from_disk(str(cached)).to_dict()
        except Exception:  # a damaged entry (e.g. a disk that filled up): render the rows again
            pass
    encoded = [encode(row, tokenizer) for row in rows]
    columns = {"input_ids": [e["input_ids"] for e in encoded], "assistant_masks": [e["assistant_masks"] for e in encoded]}
    if cached is not None:
        from datasets import Dataset, Features, List, Value

        features = Features({"input_ids": List(Value("int32")), "assistant_masks": List(Value("int8"))})
        try:
            with atomic_dir(cached) as tmp:
                Dataset.from_dict(columns, features=features).save_to_disk(str(tmp))
        except OSError:
            pass  # a cache that cannot be written (disk full, read-only) only costs the next use its time
    return columns
