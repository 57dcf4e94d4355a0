"""Taking an export home: the zip of an export folder (real exports of the tiny model), the GGUF that
downloads as it is, the steps shown with each, and which formats this machine is offered."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from export_runs import make_run

from engine.export import download, gguf
from engine.export.exporter import export
from engine.export.readiness import unavailable, why_not
from engine.export.source import ExportError
from engine.hardware import Hardware

CPU = Hardware("cpu", "CPU x86_64, 2 cores", False, 8 * 2**30, "transformers", False)
GPU = Hardware("cuda", "NVIDIA H200", True, 141 * 2**30, "unsloth", True)


@pytest.fixture(scope="module")
def exported(new_workspace, tiny_model_path):
    """A workspace whose run 'tiny' has a finished adapter export and a finished GGUF f16 export."""
    ws = new_workspace("export-download", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    export(ws, "tiny", "adapter")
    export(ws, "tiny", "gguf-f16")
    return ws


def test_the_zip_holds_the_exported_files_under_one_relative_folder(exported):
    folder = exported.runs / "tiny" / "exports" / "adapter"
    (folder / "notes.txt").write_text("mine")  # a file of the person's own, beside the export: it goes along
    (folder / "leak").symlink_to("/etc/hostname")  # a link out of the folder: never followed into the zip
    try:
        path = download.zip_export(exported, "tiny", "adapter")
    finally:
        (folder / "leak").unlink()
        (folder / "notes.txt").unlink()
    assert path == exported.root / "downloads" / "tiny-adapter.zip"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for name in names:
            assert name.startswith("tiny-adapter/") and ".." not in Path(name).parts and not name.startswith("/")
        inside = {n.removeprefix("tiny-adapter/") for n in names}
        assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "verification.json",
                "notes.txt"} <= inside
        assert "leak" not in inside and ".lora-workbench" not in inside
        assert archive.read("tiny-adapter/adapter_model.safetensors") == (folder / "adapter_model.safetensors").read_bytes()
        assert archive.getinfo("tiny-adapter/adapter_model.safetensors").compress_type == zipfile.ZIP_STORED
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_zip_is_made_again_only_when_the_export_changed(exported):
    first = download.zip_export(exported, "tiny", "adapter").stat().st_ino
    assert download.zip_export(exported, "tiny", "adapter").stat().st_ino == first  # the same file, not made again
    export(exported, "tiny", "adapter")  # a new export of the same format
    again = download.zip_export(exported, "tiny", "adapter")
    assert again.stat().st_ino != first
    with zipfile.ZipFile(again) as archive:
        fresh = archive.read("tiny-adapter/verification.json")
    assert fresh == (exported.runs / "tiny" / "exports" / "adapter" / "verification.json").read_bytes()


def test_only_the_newest_zips_are_kept(exported):
    for name in ("tiny-b", "tiny-c", "tiny-d"):  # copies of the run, with its finished export
        shutil.copytree(exported.runs / "tiny", exported.runs / name, dirs_exist_ok=True)
    for name in ("tiny", "tiny-b", "tiny-c", "tiny-d"):
        download.zip_export(exported, name, "adapter")
    kept = sorted(p.name for p in (exported.root / "downloads").glob("*.zip"))
    assert download.KEEP == 3 and kept == ["tiny-b-adapter.zip", "tiny-c-adapter.zip", "tiny-d-adapter.zip"]


def test_a_gguf_downloads_as_it_is_with_the_ollama_steps(exported):
    files = download.direct_files(exported, "tiny", "gguf-f16")
    assert [p.name for p in files] == ["Modelfile", "tiny-f16.gguf"]
    assert all(p.parent == exported.runs / "tiny" / "exports" / "gguf-f16" for p in files)  # served in place
    steps = download.steps("Pirate-v1", "gguf-q8_0")
    assert "unzip Pirate-v1-gguf-q8_0.zip && cd Pirate-v1-gguf-q8_0" in steps
    assert "ollama create pirate-v1 -f Modelfile" in steps and "ollama run pirate-v1" in steps
    assert download.direct_files(exported, "tiny", "adapter") == []  # a folder: only as a zip
    assert 'from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct"), "tiny-adapter")' in download.steps(
        "tiny", "adapter", "default")


def test_an_offer_links_the_files_under_a_random_name_and_keeps_the_newest(exported):
    files = download.direct_files(exported, "tiny", "gguf-f16")
    folder = download.offer(exported, files)
    assert folder.parent == exported.root / "downloads" / "offered" and len(folder.name) >= 24
    for path in files:  # the same file, not a copy of a GGUF of several GiB
        assert (folder / path.name).stat().st_ino == path.stat().st_ino
    assert download.offer(exported, files).name != folder.name  # each offer its own name
    for _ in range(download.OFFERS_KEPT):
        download.offer(exported, files)
    assert len(list(folder.parent.iterdir())) == download.OFFERS_KEPT and not folder.exists()
    assert all(p.is_file() for p in files)  # pruning an offer leaves the export whole


def test_what_cannot_be_downloaded_is_refused_with_a_reason(exported):
    with pytest.raises(ExportError, match="no finished merged16 export to download. Export it first"):
        download.zip_export(exported, "tiny", "merged16")
    with pytest.raises(ExportError, match="not an export to download"):
        download.zip_export(exported, "tiny", "../../etc")
    with pytest.raises(ValueError, match="cannot be a run name"):
        download.zip_export(exported, "../tiny", "adapter")


def test_formats_this_machine_cannot_make_are_named_with_the_reason(monkeypatch, tmp_path):
    assert why_not("merged4", GPU) is None
    reason = why_not("merged4", CPU)
    assert reason.startswith("Needs an NVIDIA GPU with bitsandbytes") and "CPU x86_64, 2 cores" in reason
    assert "export a GGUF" in why_not("modelfile", CPU, ["adapter"])
    assert why_not("modelfile", CPU, ["gguf-q8_0"]) is None

    monkeypatch.setattr(gguf, "TOOLS", tmp_path / "no-tools")  # a machine where llama.cpp was never installed
    blocked = unavailable(CPU, ["gguf-f16"])
    assert set(blocked) == {"merged4", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m"}
    assert "make gguf-tools" in blocked["gguf-f16"]
    (tmp_path / "no-tools" / "src").mkdir(parents=True)
    (tmp_path / "no-tools" / "src" / "convert_hf_to_gguf.py").write_text("")  # the converter, not the quantizer
    assert set(unavailable(CPU, [])) == {"merged4", "gguf-q4_k_m", "modelfile"}
    assert "make gguf-quantizer" in why_not("gguf-q4_k_m", CPU)
