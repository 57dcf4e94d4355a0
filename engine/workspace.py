"""The workspace: one folder holding models/, datasets/ and runs/ (DESIGN.md, decision 9), and the one
rule for turning a typed name into a path inside it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine import space
from engine.i18n import msg

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class BadName(ValueError):
    """A typed name that cannot become a file or folder name; the message says what to type instead."""


def check_name(name: str, what: str = "name", limit: int = 100) -> str:
    """`name` as a safe single path component: letters, digits, '.', '_', '-', starting with a letter or
    digit, at most `limit` characters. Control characters, separators and a trailing newline are
    refused, never silently trimmed into another name."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > limit:
        shown = repr(name) if isinstance(name, str) and not name.isprintable() else f"'{name}'"
        raise BadName(msg("{shown} cannot be a {what}: use 1 to {limit} letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit (e.g. pirate-v1).", shown=shown, what=msg(what), limit=limit))
    return name


def inside(base: Path, *parts: str) -> Path:
    """`base/parts...` resolved, refused unless it stays inside `base` (symbolic links included)."""
    base = Path(base).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise BadName(msg("'{path}' is outside the workspace; give a name, not a path.", path="/".join(parts)))
    return path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None) -> "Workspace":
        stored = space.storage()
        chosen = root or os.environ.get("WORKBENCH_HOME") or (stored / "workbench" if stored else "workspace")
        ws = cls(Path(chosen).expanduser().resolve())
        for sub in (ws.models, ws.datasets, ws.runs):
            sub.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_path(self, name: str) -> Path:
        return inside(self.runs, check_name(name, "run name"))

    def dataset_path(self, name: str) -> Path:
        return inside(self.datasets, check_name(name, "data set name", limit=64))
