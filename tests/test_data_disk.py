"""A data set save on a disk that fills up, or on a read-only one: a plain sentence, the data set
that was there before untouched, and nothing half-written left that looks finished.

The disk is a real size-limited tmpfs (mounting needs root, which the test machines have; elsewhere
the test is skipped rather than faked)."""

import json
import subprocess
from pathlib import Path

import pytest

from engine.data import DataError
from engine.data.store import import_file, list_datasets, read_meta
from engine.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _big_file(path: Path) -> Path:
    rows = ({"messages": [{"role": "user", "content": f"Tell me about sea {i}. " * 20},
                          {"role": "assistant", "content": "The sea is wide and deep. " * 40}]} for i in range(8000))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")  # about 12 MB
    return path


def test_disk_full_during_a_save(small_disk, tmp_path):
    ws = Workspace.from_env(small_disk / "workspace")
    import_file(ws, "keep", EXAMPLES / "alpaca_sample.json")
    big = _big_file(tmp_path / "big.jsonl")
    for name in ("new", "keep"):
        with pytest.raises(DataError) as e:
            import_file(ws, name, big, overwrite=True)
        assert str(e.value).startswith(f"The data set '{name}' was not saved: The disk is full")
        assert "Free some space" in str(e.value) and "Errno" not in str(e.value) and "OSError" not in str(e.value)
    assert read_meta(ws, "keep").format == "alpaca"
    assert [d.name for d in list_datasets(ws)] == ["keep"]
    assert sorted(p.name for p in ws.datasets.iterdir()) == ["keep"]  # no temporary folder left behind


def test_read_only_disk(small_disk):
    ws = Workspace.from_env(small_disk / "workspace")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(DataError) as e:
        import_file(ws, "pirate", EXAMPLES / "pirate.jsonl")
    assert str(e.value).startswith("The data set 'pirate' was not saved: The folder is read-only")
    assert "Choose a folder the app can write to." in str(e.value)
