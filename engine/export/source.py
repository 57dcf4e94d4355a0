"""The run being exported: its base model, its adapter and the tokenizer it was trained with.

Runs are read through engine.train.runs (`load_run`, `Run.config`, `Run.adapter`): by name, only ever
inside the workspace; a folder elsewhere only through `run_folder`, which the command line uses for a
path the person typed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.i18n import joined, msg
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
        from engine.chat.models import resolve_model

        return resolve_model(self.base_spec, self.workspace, anywhere=True)

    def tokenizer(self):
        """The tokenizer saved with the adapter, with its training chat template (markers included)."""
        from engine.chat.templates import load_tokenizer

        return load_tokenizer(self.adapter, None)

    def export_tokenizer(self):
        """The training tokenizer with the markers taken out of its template (renders the same text)."""
        tok = self.tokenizer()
        if tok.chat_template:
            tok.chat_template = plain_template(tok.chat_template)
        return tok


def run_folder(path: str | Path):
    """The run in a folder anywhere (e.g. trained with `python -m engine train DIR`), for the command line."""
    from engine.train.runs import RUN_FILE, Run, read_status

    path = Path(path).expanduser().resolve()
    if not (path / RUN_FILE).is_file():
        raise ExportError(msg("There is no run in {path} (it has no {file}). Give a run's name, or the folder "
                              "of a run.", path=path, file=RUN_FILE))
    return Run(path.name, path, read_status(path))


def open_source(workspace: Workspace, run) -> ExportSource:
    """A run by name (only ever inside the workspace), or a Run already read (see `run_folder`)."""
    from engine.train.config import ConfigError
    from engine.train.runs import Run, RunError, load_run

    if not isinstance(run, Run):
        try:
            run = load_run(workspace, str(run))
        except RunError as e:
            raise ExportError(joined([e.args[0], msg("Pick a run that has an adapter from the Export tab's list.")])) from None
    if run.adapter is None:
        raise ExportError(msg(
            "The run '{run}' has no adapter yet (no adapter/adapter_config.json): it has not finished or "
            "been stopped. Wait for it to finish, or stop it (stopping saves the adapter), then export.", run=run.name))
    try:
        model = run.config.model
    except ConfigError as e:
        raise ExportError(msg("The run's settings file {path} cannot be used: {detail}", path=run.path / "run.yaml",
                              detail=e.args[0] if e.args else str(e))) from None
    return ExportSource(name=run.name, path=run.path, workspace=workspace, base_spec=model.name_or_path,
                        load_in_4bit=model.load_in_4bit, max_seq_length=model.max_seq_length)


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
        raise ExportError(msg(
            "Not enough free disk space in {probe}: this export needs about {need:.1f} GiB and {free:.1f} GiB is "
            "free. Free some space (old exports and checkpoints under the run folders are the usual suspects) or "
            "export to another disk with --out.", probe=probe, need=need / 2**30, free=free / 2**30))


def exportable_runs(workspace: Workspace) -> list[str]:
    """Runs with an adapter to export, newest adapter first."""
    from engine.train.runs import list_runs

    found = [r for r in list_runs(workspace) if r.adapter is not None]
    return [r.name for r in sorted(found, key=lambda r: r.adapter.stat().st_mtime, reverse=True)]
