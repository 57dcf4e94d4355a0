"""Exports never destroy what they did not write, never leave the workspace from a name, and say a full
or read-only disk in plain words, leaving nothing half-written that looks finished (tiny model)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from export_runs import make_run

from engine.export.exporter import export
from engine.export.source import ExportError
from engine.files import MARKER
from engine.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_path):
    workspace = Workspace.from_env(tmp_path_factory.mktemp("safety") / "workspace")
    make_run(workspace, "tiny", str(tiny_model_path), tiny_model_path)
    return workspace


@contextmanager
def small_disk(folder: Path, size: str, *options: str):
    """A size-limited tmpfs at `folder` (we run as root here); None where the machine does not allow it."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(folder)],
                          capture_output=True)
    try:
        yield folder if done.returncode == 0 else None
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)


def _plain(message: str) -> None:
    assert "Error" not in message and "Errno" not in message and "Traceback" not in message, message


def test_an_export_into_a_folder_holding_other_files_is_refused_and_they_stay(ws, tmp_path):
    folder = tmp_path / "mine"
    (folder / "photos").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ExportError, match="holds files that are not an earlier adapter export.*new or empty folder"):
        export(ws, "tiny", "adapter", out=folder)
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "photos" / "a.jpg").read_bytes() == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left beside it

    # A new folder is created; exporting there again replaces the app's own earlier export.
    first = export(ws, "tiny", "adapter", out=tmp_path / "new")
    assert first.passed and (first.path / MARKER).is_file() and MARKER not in first.files
    again = export(ws, "tiny", "adapter", out=tmp_path / "new")
    assert again.passed and (again.path / "verification.json").is_file()
    # ... but not once the person has put a file of their own into it.
    (again.path / "my-notes.md").write_text("mine")
    with pytest.raises(ExportError, match="Nothing was exported"):
        export(ws, "tiny", "adapter", out=tmp_path / "new")
    assert (again.path / "my-notes.md").read_text() == "mine"


def test_out_dot_in_the_current_folder_is_refused_and_deletes_nothing(ws, tmp_path):
    cwd = tmp_path / "project"
    cwd.mkdir()
    (cwd / "thesis.tex").write_text("years of work")
    done = subprocess.run([sys.executable, "-m", "engine", "export", "tiny", "--format", "adapter", "--out", "."],
                          cwd=cwd, env={**os.environ, "WORKBENCH_HOME": str(ws.root), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "is the folder you are in" in done.stderr and "Nothing there was changed" in done.stderr
    _plain(done.stderr)
    assert sorted(p.name for p in cwd.iterdir()) == ["thesis.tex"] and (cwd / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_a_run_name_cannot_reach_outside_the_workspace(ws):
    # A folder beside the workspace that looks like a run: `runs/../..` would be it.
    outside = ws.root.parent
    shutil.copytree(ws.runs / "tiny" / "adapter", outside / "adapter", dirs_exist_ok=True)
    shutil.copy(ws.runs / "tiny" / "run.yaml", outside / "run.yaml")
    for name in ("../..", "../../", "tiny/../..", "/etc"):
        with pytest.raises(ExportError, match="cannot be a run name"):
            export(ws, name, "adapter")
    assert not (outside / "exports").exists()


def test_a_full_disk_during_an_export_says_so_plainly_and_leaves_nothing_finished(ws, tmp_path, monkeypatch):
    with small_disk(tmp_path / "disk", "120m") as disk:
        steps = []
        if disk is not None:  # a real full disk: the progress callback fills it once the copying starts
            def fill(fraction, message):
                steps.append(message)
                if message.startswith("Copying"):
                    free = shutil.disk_usage(disk).free
                    with open(disk / "filler", "wb") as f:
                        f.write(b"\0" * (free - 64 * 1024))
        else:  # no tmpfs on this machine: the same failure injected at the copy
            disk = tmp_path / "disk"

            def fill(fraction, message):
                steps.append(message)

            def no_space(*args, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[1]))
            monkeypatch.setattr(shutil, "copy2", no_space)
        with pytest.raises(ExportError) as failed:
            export(ws, "tiny", "adapter", out=disk / "adapter", progress=fill)
        message = str(failed.value)
        assert "The disk is full" in message and "GiB free" in message and "another disk" in message
        _plain(message)
        assert any(s.startswith("Copying") for s in steps)
        assert not (disk / "adapter").exists()
        assert [p.name for p in disk.iterdir() if p.name != "filler"] == []  # no half-written folder left


def test_a_read_only_disk_says_so_plainly_from_the_command_line(ws, tmp_path):
    with small_disk(tmp_path / "ro", "200m", "ro") as disk:
        if disk is None:
            pytest.skip("this machine does not allow mounting a tmpfs; the full-disk test injects its fault instead")
        done = subprocess.run([sys.executable, "-m", "engine", "export", "tiny", "--format", "adapter",
                               "--out", str(disk / "adapter")], cwd=ROOT,
                              env={**os.environ, "WORKBENCH_HOME": str(ws.root)}, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2 and "read-only" in done.stderr and "Choose a folder" in done.stderr, done.stderr
        _plain(done.stderr)
        assert list(disk.iterdir()) == []


def test_a_gguf_tool_that_runs_out_of_disk_is_reported_plainly(monkeypatch, tmp_path):
    from engine.export import gguf

    tools = tmp_path / "tools"
    (tools / "src").mkdir(parents=True)
    (tools / "src" / "convert_hf_to_gguf.py").write_text(  # stands in for llama.cpp's converter filling the disk
        "import errno, os\nraise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'model.gguf')\n")
    monkeypatch.setattr(gguf, "TOOLS", tools)
    with pytest.raises(ExportError) as failed:
        gguf.convert(tmp_path, tmp_path / "model.gguf", "f16", "tiny", lambda f, m: None, 0.0, 1.0)
    assert "Converting to GGUF f16 failed: The disk is full" in str(failed.value)
    _plain(str(failed.value))
