"""Data sets in the workspace: `datasets/<name>/data.jsonl` (one row a line) and `meta.json` (the
source file, format, mapping, template choice, counts), written atomically; and the tokenised form
training uses, cached on disk with the `datasets` library under a fingerprint of the rows, the
tokenizer, its template and `max_seq_length`, so a second use loads instead of tokenising again.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from engine.data.errors import DataError
from engine.data.pipeline import Inspection, Options, inspect, read_rows
from engine.data.readers import Progress
from engine.data.render import encode
from engine.files import atomic_dir, read_json, write_json
from engine.workspace import BadName
from engine.workspace import check_name as workspace_name

TOKENIZED = ".tokenized"  # the rendered data sets, by fingerprint: not a data set (no meta.json), deletable
_CACHE_VERSION = 2


def check_name(name: str) -> str:
    try:
        return workspace_name(name, "data set name", limit=64)
    except BadName as e:
        raise DataError(str(e)) from None


def import_file(workspace, name: str, path: str | os.PathLike, options: Options = Options(), *,
                template: str = "model", fallback: str = "chatml", overwrite: bool = False,
                progress: Progress | None = None, max_bytes: int | None = None) -> tuple[Path, Inspection]:
    """Read `path` and save what it keeps as the data set `name`; streamed, so memory stays flat."""
    name = check_name(name)
    target = Path(workspace.datasets) / name
    if target.exists() and not overwrite:
        raise DataError(f"A data set named '{name}' already exists. Choose another name, or replace it.")
    digest = hashlib.sha256()
    with atomic_dir(target) as tmp:
        with open(tmp / "data.jsonl", "w", encoding="utf-8") as f:
            def sink(row: dict) -> None:
                line = json.dumps(row, ensure_ascii=False) + "\n"
                f.write(line)
                digest.update(line.encode("utf-8"))

            inspection = inspect(path, options, sink=sink, keep_rows=False, progress=progress, max_bytes=max_bytes)
        if not inspection.report.rows_kept:
            raise DataError(f"Nothing was saved: no row of '{Path(path).name}' can be trained on. {inspection.report.summary()}")
        write_json(tmp / "meta.json", _meta(name, inspection, template, fallback, digest.hexdigest()))
    return target, inspection


def _meta(name: str, inspection: Inspection, template: str, fallback: str, fingerprint: str) -> dict:
    source, report, options = inspection.source, inspection.report, inspection.options
    return {
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"file": source.path.name, "path": str(source.path.resolve()), "bytes": source.size,
                   "type": source.kind, "encoding": source.encoding},
        "format": inspection.format,
        "detected": {"format": inspection.detection.format, "confidence": inspection.detection.confidence,
                     "evidence": inspection.detection.evidence},
        "mapping": inspection.mapping,
        "kind": inspection.kind,
        "system_prompt": options.system_prompt,
        "rules": {"min_chars": options.rules.min_chars, "require_system": options.rules.require_system},
        "template": {"choice": template, "fallback": fallback},
        "counts": {"rows_in": report.rows_in, "rows_kept": report.rows_kept, "dropped": dict(report.dropped)},
        "dropped_rows": report.dropped_rows,
        "errors": report.errors[:100],
        "notes": report.notes,
        "fingerprint": fingerprint,
    }


def list_datasets(workspace) -> list[dict]:
    """The meta.json of every saved data set, by name."""
    found = []
    for folder in sorted(Path(workspace.datasets).iterdir()):
        meta = read_json(folder / "meta.json") if folder.is_dir() else None
        if meta and (folder / "data.jsonl").is_file():
            found.append(meta)
    return found


def read_meta(workspace, name: str) -> dict:
    meta = read_json(Path(workspace.datasets) / check_name(name) / "meta.json")
    if meta is None:
        raise DataError(f"There is no saved data set named '{name}'.")
    return meta


def read_dataset(workspace, name: str) -> list[dict]:
    read_meta(workspace, name)
    return read_rows(Path(workspace.datasets) / name / "data.jsonl")


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
