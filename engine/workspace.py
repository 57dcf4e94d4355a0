"""The workspace: one folder holding models/, datasets/ and runs/ (DESIGN.md, decision 9)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike | None = None) -> "Workspace":
        chosen = root or os.environ.get("WORKBENCH_HOME") or ("/data/workbench" if Path("/data").is_dir() and os.environ.get("SPACE_ID") else "workspace")
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
