"""The run being exported: its base model, its adapter and the tokenizer it was trained with.

A run folder (engine/train/runs.py) holds `run.yaml` and `adapter/` (the peft adapter saved with the
exact tokenizer and chat template of training). Only the `model` section of run.yaml is read here,
so an export works on any run folder that has one.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from engine.workspace import Workspace

OnProgress = Callable[[float, str], None]

# trl's assistant-only loss markers: jinja extensions that transformers understands and nothing else does
# (llama.cpp, Ollama, vLLM), and that render to nothing, so exports carry the template without them.
_MARKERS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


class ExportError(ValueError):
    """An export that cannot be done as asked; the message says what was wrong and what to do."""


def plain_template(template: str) -> str:
    return _MARKERS.sub("", template)


def no_progress(fraction: float, message: str) -> None:
    pass


@dataclass(frozen=True)
class ExportSource:
    name: str
    path: Path
    workspace: Workspace
    base_spec: str
    load_in_4bit: bool
    max_seq_length: int

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def exports(self) -> Path:
        return self.path / "exports"

    def base_path(self) -> Path:
        from engine.models import resolve_model

        return resolve_model(self.base_spec, self.workspace)

    def tokenizer(self):
        """The tokenizer saved with the adapter, with its training chat template (markers included)."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.adapter)

    def export_tokenizer(self):
        """The training tokenizer with the markers taken out of its template (renders the same text)."""
        tok = self.tokenizer()
        if tok.chat_template:
            tok.chat_template = plain_template(tok.chat_template)
        return tok


def open_source(workspace: Workspace, run: str | Path) -> ExportSource:
    """A run by name (in the workspace) or by the path of its folder."""
    path = Path(run).expanduser()
    if not (path / "run.yaml").is_file():
        path = workspace.runs / str(run)
    if not (path / "run.yaml").is_file():
        raise ExportError(f"There is no run '{run}' (looked for run.yaml in {path}). Pick a run from the Train tab's list.")
    try:
        config = yaml.safe_load((path / "run.yaml").read_text(encoding="utf-8")) or {}
        model = config.get("model") or {}
    except (yaml.YAMLError, AttributeError) as e:
        raise ExportError(f"The run's settings file {path / 'run.yaml'} cannot be read ({e}).") from None
    if not (path / "adapter" / "adapter_config.json").is_file():
        raise ExportError(
            f"The run '{path.name}' has no adapter yet (no adapter/adapter_config.json): it has not finished or "
            "been stopped. Wait for it to finish, or stop it (stopping saves the adapter), then export."
        )
    return ExportSource(
        name=path.name,
        path=path,
        workspace=workspace,
        base_spec=str(model.get("name_or_path") or "default"),
        load_in_4bit=bool(model.get("load_in_4bit", False)),
        max_seq_length=int(model.get("max_seq_length") or 2048),
    )


def parameter_count(model_dir: Path) -> int:
    """Parameters of a safetensors model, from the file headers (nothing is loaded)."""
    from safetensors import safe_open

    total = 0
    for file in Path(model_dir).glob("*.safetensors"):
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def require_disk(folder: Path, need: int) -> None:
    """Refuse to start a write that cannot finish: `need` bytes plus a margin must be free."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = int(need * 1.05) + 100 * 2**20
    if free < need:
        raise ExportError(
            f"Not enough free disk space in {probe}: this export needs about {need / 2**30:.1f} GiB and "
            f"{free / 2**30:.1f} GiB is free. Free some space (old exports and checkpoints under the run folders are "
            "the usual suspects) or export to another disk with --out."
        )


def exportable_runs(workspace: Workspace) -> list[str]:
    """Runs with an adapter to export, newest first."""
    found = [p.parent.parent for p in workspace.runs.glob("*/adapter/adapter_config.json")]
    return [p.name for p in sorted(found, key=lambda p: (p / "adapter").stat().st_mtime, reverse=True)]
