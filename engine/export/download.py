"""A finished export, ready to take home: a GGUF file and its Modelfile as they are, a whole export folder
as a zip built inside the workspace (`workspace/downloads/`, the newest KEEP kept), and the steps to use it.

The zip is written file by file into a hidden temporary file and renamed into place, so nothing is held
in memory and a half-written zip is never offered. Inside it every path is `RUN-FORMAT/<file>`: relative,
no `..`, only the export's own regular files (no hidden files, no symbolic links).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import zipfile
from pathlib import Path

from engine.default_model import NAME as DEFAULT_MODEL
from engine.export.catalog import EXPORT_FORMATS
from engine.export.source import ExportError, require_disk
from engine.i18n import msg
from engine.workspace import Workspace, inside

KEEP = 3  # zips kept in workspace/downloads; older ones are deleted when a new one is made
OFFERS_KEPT = 20  # folders of files offered for download, newest first
STORED = {".safetensors", ".gguf", ".bin"}  # weights barely compress, and deflating gigabytes takes minutes


def downloads(workspace: Workspace) -> Path:
    return inside(workspace.root, "downloads")


def export_folder(workspace: Workspace, run: str, fmt: str) -> Path:
    """The folder of a finished export (it has its verification.json); ExportError if there is none."""
    if fmt not in EXPORT_FORMATS or fmt == "modelfile":
        raise ExportError(msg("'{format}' is not an export to download: choose one of the run's finished exports.", format=fmt))
    folder = inside(workspace.run_path(run), "exports", fmt)
    if not (folder / "verification.json").is_file():
        raise ExportError(msg("The run '{run}' has no finished {format} export to download. Export it first.", run=run, format=fmt))
    return folder


def files_of(folder: Path) -> list[Path]:
    """The export's own files: regular, not hidden, not links, inside the folder, sorted."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.is_symlink() or not path.is_file():
            continue
        if path.resolve().is_relative_to(folder.resolve()):
            found.append(path)
    return found


def direct_files(workspace: Workspace, run: str, fmt: str) -> list[Path]:
    """What can be downloaded as it is, without a zip: a GGUF export's .gguf file and its Modelfile."""
    if not fmt.startswith("gguf-"):
        return []
    folder = export_folder(workspace, run, fmt)
    return [p for p in files_of(folder) if p.suffix == ".gguf" or p.name == "Modelfile"]


def zip_export(workspace: Workspace, run: str, fmt: str) -> Path:
    """`downloads/RUN-FORMAT.zip` of a finished export, made again only when the export is newer than it."""
    folder = export_folder(workspace, run, fmt)
    files = files_of(folder)
    out = downloads(workspace)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{run}-{fmt}.zip"
    if target.is_file() and target.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in files):
        target.touch()  # counts as new for the pruning below
        return target
    require_disk(out, sum(p.stat().st_size for p in files))
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                kind = zipfile.ZIP_STORED if path.suffix in STORED else zipfile.ZIP_DEFLATED
                archive.write(path, f"{target.stem}/{path.relative_to(folder).as_posix()}", compress_type=kind)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _prune(out)
    return target


def _prune(folder: Path) -> None:
    zips = sorted(folder.glob("*.zip"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in zips[KEEP:]:
        old.unlink(missing_ok=True)  # a download still being served keeps reading it: the file lives while open


def offer(workspace: Workspace, paths: list[Path]) -> Path:
    """A new folder `downloads/offered/<random>/` holding `paths` as hard links (no copy of a GGUF of
    several GiB), for the web server to serve. Only the person the folder's name is handed to can fetch
    the files: an export's own path is easy to guess, a random name is not."""
    root = inside(downloads(workspace), "offered")
    root.mkdir(parents=True, exist_ok=True)
    folder = root / secrets.token_urlsafe(18)
    folder.mkdir()
    for path in paths:
        try:
            os.link(path, folder / path.name)
        except OSError:  # a file system without hard links, or the export on another disk
            shutil.copyfile(path, folder / path.name)
    for old in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime_ns, reverse=True)[OFFERS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def ollama_name(run: str) -> str:
    """Ollama takes lower-case model names; a run name is letters, digits, '.', '_' and '-' already."""
    return run.lower()


def steps(run: str, fmt: str, base: str = "") -> str:
    """How to use the export after downloading it, in Markdown."""
    name = f"{run}-{fmt}"
    if fmt.startswith("gguf-"):
        return msg("**Run it with Ollama**: press **Make a .zip** and download it (or download the `.gguf` file and "
                   "the `Modelfile` into one folder, `cd` there and skip the first line), then:\n\n```\n"
                   "unzip {name}.zip && cd {name}\nollama create {model} -f Modelfile\nollama run {model}\n```\n\n"
                   "llama.cpp and LM Studio open the `.gguf` file alone.", name=name, model=ollama_name(run))
    if base in ("default", DEFAULT_MODEL):  # the app's default model is this one on the Hub
        base = f"HuggingFaceTB/{DEFAULT_MODEL}"
    if fmt == "adapter":
        load = f'PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base}"), "{name}")'
        return msg("**Use it with transformers**: download the zip, then:\n\n```\nunzip {name}.zip\n```\n\n"
                   "and in Python, from the folder holding `{name}`: `{load}` (the adapter goes on top of the same "
                   "base model it was trained on).", name=name, load=load)
    return msg("**Use it with transformers**: download the zip, then:\n\n```\nunzip {name}.zip\n```\n\n"
               "and in Python, from the folder holding `{name}`: `{load}`.", name=name,
               load=f'AutoModelForCausalLM.from_pretrained("{name}")')
