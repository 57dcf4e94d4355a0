"""The one persistence layer: atomic writes (a crash never leaves a half-written file or folder that
a later read trusts), JSON Lines appended and read back, and the timestamps records carry."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


MARKER = ".lora-workbench"  # in every folder atomic_dir writes: the paths it wrote there, one a line


class NotReplaceable(FileExistsError):
    """The target of an atomic write holds things this app did not write there; nothing was changed."""


def mark(folder: Path, paths: Iterable[str]) -> None:
    """Record `paths` (relative to `folder`) as written by this app, so a later atomic_dir may replace them."""
    text = "".join(f"{p}\n" for p in sorted(paths) if p != MARKER)
    (Path(folder) / MARKER).write_text(text, encoding="utf-8")


def _written(folder: Path) -> set[str]:
    try:
        return set((folder / MARKER).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return set()


def replaceable(target: Path, new: Path | None = None) -> bool:
    """Whether writing `target` as a whole loses nothing this app did not write: it is missing, or a folder
    every entry of which its MARKER lists or the new output `new` also holds (for folders written before
    the marker existed). Never a file, the file system's root or a folder holding the current directory."""
    target = Path(target).resolve()
    if not target.exists():
        return True
    if _never(target):
        return False
    ours = _written(target) | {MARKER}
    for path in target.rglob("*"):
        rel = path.relative_to(target).as_posix()
        if rel not in ours and not (new is not None and (Path(new) / rel).exists()):
            return False
    return True


def _never(target: Path) -> bool:
    try:
        cwd = Path.cwd().resolve()
    except FileNotFoundError:
        cwd = None
    return not target.name or not target.is_dir() or (cwd is not None and cwd.is_relative_to(target))


def _refuse(target: Path) -> NotReplaceable:
    return NotReplaceable(errno.EEXIST, f"{target} holds files this app did not write; nothing was replaced",
                          str(target))


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it takes `target`'s place in one rename.

    An existing `target` is replaced only where `replaceable` says so; else NotReplaceable is raised
    (before the write where that is already clear, else after it) and `target` is left untouched.
    Leftovers of an interrupted write of the same target (hidden, marked folders beside it) are
    removed first."""
    target = Path(target).resolve()
    if target.exists() and _never(target):
        raise _refuse(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if (stale / MARKER).is_file():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    old = None
    try:
        mark(tmp, [])
        yield tmp
        if not replaceable(target, tmp):
            raise _refuse(target)
        mark(tmp, (p.relative_to(tmp).as_posix() for p in tmp.rglob("*")))
        if target.exists() and any(target.iterdir()):
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
            (target / MARKER).touch()  # so that a crash before the rmtree below leaves a leftover we may clear
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line holding a JSON object; a line being written (or cut by a crash) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
