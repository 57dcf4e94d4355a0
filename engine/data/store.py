"""Data sets in the workspace: `datasets/<name>/data.jsonl` (one row a line) and `meta.json` (the
source file, format, mapping, template choice, counts), written atomically; and the tokenised form
training uses, cached on disk with the `datasets` library under a fingerprint of the rows, the
tokenizer, its template and `max_seq_length`, so a second use loads instead of tokenising again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from engine.data.errors import DataError
from engine.data.pipeline import Inspection, Options, inspect, read_rows
from engine.data.readers import Progress
from engine.data.render import encode
from engine.files import atomic_dir, read_json, write_json

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKENIZED = ".tokenized"  # shared cache folder under workspace/datasets
_CACHE_VERSION = 1


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise DataError(
            f"'{name}' cannot be a data set name: use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (e.g. pirate-v1)."
        )
    return name


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


def fingerprint(rows: list[dict], tokenizer, max_seq_length: int) -> str:
    h = hashlib.sha256(f"{_CACHE_VERSION}|{max_seq_length}|{tokenizer.eos_token}|".encode())
    h.update((tokenizer.chat_template or "").encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for row in rows:
        h.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:24]


def tokenize_for_training(rows: list[dict], tokenizer, max_seq_length: int, cache_dir: str | os.PathLike | None = None):
    """A `datasets.Dataset` of `input_ids` and `assistant_masks` (1 = trained), truncated at
    `max_seq_length`, rendered by `render.encode`; rows left with nothing to train are left out.
    trl's SFTTrainer takes it as is (it builds labels from `assistant_masks`). With `cache_dir`,
    the result is saved under its fingerprint and loaded from there the next time."""
    from datasets import Dataset, Features, List, Value, load_from_disk

    key = fingerprint(rows, tokenizer, max_seq_length)
    cached = Path(cache_dir) / key if cache_dir else None
    if cached is not None and (cached / "dataset_info.json").is_file():
        return load_from_disk(str(cached))

    def batches(indices: list[int]) -> dict:
        out = {"input_ids": [], "assistant_masks": []}
        for i in indices:
            encoded = encode(rows[i], tokenizer)
            mask = encoded["assistant_masks"][:max_seq_length]
            if any(mask):
                out["input_ids"].append(encoded["input_ids"][:max_seq_length])
                out["assistant_masks"].append(mask)
        return out

    features = Features({"input_ids": List(Value("int32")), "assistant_masks": List(Value("int8"))})
    dataset = Dataset.from_dict({"i": list(range(len(rows)))}).map(
        lambda batch: batches(batch["i"]), batched=True, remove_columns=["i"], features=features,
        new_fingerprint=key,
    )
    if cached is None:
        return dataset
    with atomic_dir(cached) as tmp:
        dataset.save_to_disk(str(tmp))
    return load_from_disk(str(cached))
