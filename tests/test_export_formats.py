"""Every export format on the tiny model (seconds each; GGUF ones start llama.cpp's converter): what is
written, that it loads back, what its verification says, and the messages when it cannot be done."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from export_runs import ensure_llama_cpp, make_run

from engine.export import gguf
from engine.export.catalog import EXPORT_FORMATS
from engine.export.exporter import export, list_exports
from engine.export.modelfile import read_modelfile
from engine.export.source import ExportError, exportable_runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_run(new_workspace, tiny_model_path):
    ensure_llama_cpp("quantizer")
    ws = new_workspace("export", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    return ws


def _finished(folder: Path) -> dict:
    """A finished export: its folder has a verification.json, and no temporary folder is left beside it."""
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], list(folder.parent.iterdir())
    return json.loads((folder / "verification.json").read_text())


def test_adapter_export_answers_like_the_in_app_model_and_carries_a_plain_template(tiny_run):
    steps = []
    result = export(tiny_run, "tiny", "adapter", progress=lambda f, m: steps.append((f, m)))
    assert result.passed and result.report.identical, result.summary()
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(result.files)
    template = (result.path / "chat_template.jinja").read_text()
    assert "{% generation %}" not in template and "<|im_start|>" in template
    assert [a.first_difference for a in result.report.answers] == [None] * 3
    assert all(len(a.reference) > 0 and a.reference == a.exported for a in result.report.answers)
    saved = _finished(result.path)
    assert saved["passed"] is True and saved["format"] == "adapter" and len(saved["answers"]) == 3
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(steps) >= 4
    assert exportable_runs(tiny_run) == ["tiny"]
    assert [e["format"] for e in list_exports(tiny_run, "tiny")] == ["adapter"]


def test_merged16_is_16_bit_with_the_preset_in_its_generation_config(tiny_run, tiny_model_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export(tiny_run, "tiny", "merged16", preset="Roleplay chat")
    config = json.loads((result.path / "config.json").read_text())
    generation = json.loads((result.path / "generation_config.json").read_text())
    assert config["dtype"] == "float16"
    assert generation["do_sample"] is True and generation["temperature"] == 0.95 and generation["top_k"] == 20
    assert generation["repetition_penalty"] == 1.2 and generation["max_new_tokens"] == 1024
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]
    assert "{% generation %}" not in tokenizer.chat_template
    # The merged weights compute what base + adapter computes, up to 16-bit rounding.
    ids = torch.tensor([tokenizer("The sea is calm and the sky is blue")["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(result.path, dtype=torch.float32)
    in_app = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32),
                                       tiny_run.runs / "tiny" / "adapter")
    with torch.no_grad():
        want = in_app(ids).logits
        with in_app.disable_adapter():
            base = in_app(ids).logits
        got = merged(ids).logits
    assert (got - want).abs().max() < 2e-3 < (base - want).abs().max()
    # The verification compared greedy answers and says so in the report and in verification.json.
    report = result.report
    assert report.passed == report.identical and len(report.answers) == 3
    assert _finished(result.path)["identical"] == report.identical


def test_merged4_without_cuda_says_what_is_needed_and_writes_nothing(tiny_run):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: tests/test_export_default_model.py covers merged4")
    with pytest.raises(ExportError, match="needs an NVIDIA GPU with bitsandbytes.*merged16.*gguf-q4_k_m"):
        export(tiny_run, "tiny", "merged4")
    assert not (tiny_run.runs / "tiny" / "exports" / "merged4").exists()


@pytest.mark.parametrize("quant, tensor_type", [("f16", "F16"), ("q8_0", "Q8_0"), ("q4_k_m", "Q4_K")])
def test_gguf_is_written_with_a_modelfile_and_verified(tiny_run, quant, tensor_type):
    result = export(tiny_run, "tiny", f"gguf-{quant}", preset="Leaderboard")
    file = result.path / f"tiny-{quant}.gguf"
    meta = gguf.metadata(file)
    assert tensor_type in meta["tensor_types"] or (quant == "q4_k_m" and meta["tensor_types"].keys() - {"F32"})
    assert meta["tokenizer.ggml.eos_token_id"] == 2 and meta["tokenizer.ggml.pre"] == "smollm"
    assert "{% generation %}" not in meta["tokenizer.chat_template"]
    modelfile = read_modelfile(result.path / "Modelfile")
    assert modelfile["from"] == f"./tiny-{quant}.gguf"
    assert ("stop", '"<|im_end|>"') in modelfile["parameters"]
    assert ("temperature", "0.8") in modelfile["parameters"] and ("num_ctx", "1024") in modelfile["parameters"]
    report = result.report
    assert not report.problems
    assert [t.same for t in report.templates] == [True, True, True, True]
    assert len(report.answers) == 3 and 0.0 <= report.argmax_agreement <= 1.0
    if quant == "f16":
        assert report.identical and result.passed, result.summary()
    else:  # the floor decides; the tiny random model's near-ties make its numbers meaningless, see the slow tests
        floor = EXPORT_FORMATS[f"gguf-{quant}"].floor  # and llama.cpp's own run of the file, where it is built
        assert result.passed == (report.argmax_agreement >= floor and (report.runtime is None or report.runtime.passed))
    assert _finished(result.path)["argmax_agreement"] == pytest.approx(report.argmax_agreement)



def test_the_tokenizer_check_names_what_llama_cpp_would_do_differently(tiny_run):
    """The metadata of the f16 file, then altered as a broken conversion would write it: each difference is
    named, in the viewer's language."""
    from engine.i18n import tr
    from engine.export.source import open_source

    if not (tiny_run.runs / "tiny" / "exports" / "gguf-f16").exists():
        export(tiny_run, "tiny", "gguf-f16")
    meta = gguf.metadata(tiny_run.runs / "tiny" / "exports" / "gguf-f16" / "tiny-f16.gguf")
    tokenizer = open_source(tiny_run, "tiny").tokenizer()
    assert gguf.tokenizer_check(meta, tokenizer) == []
    tokens = list(meta["tokenizer.ggml.tokens"])
    tokens[7] = "spelled-differently"
    broken = {**meta, "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.eos_token_id": 0, "tokenizer.ggml.add_bos_token": True}
    problems = gguf.tokenizer_check(broken, tokenizer)
    assert problems == [
        "The GGUF vocabulary differs from the tokenizer's from token id 7.",
        f"The GGUF end-of-text token is id 0; the tokenizer's is {tokenizer.eos_token_id} ({tokenizer.eos_token}), "
        "so replies may not stop.",
        f"llama.cpp would add a start token ({tokenizer.bos_token}) that training did not add."]
    assert tr(problems[0], "zh-CN") == "GGUF 文件的词表从第 7 号词元起与分词器的不同。"

def test_modelfile_is_rewritten_beside_the_gguf_with_a_system_prompt(tiny_run):
    if not (tiny_run.runs / "tiny" / "exports" / "gguf-f16").exists():
        export(tiny_run, "tiny", "gguf-f16")
    result = export(tiny_run, "tiny", "modelfile", preset="Precise", system="You are a pirate. Say arr.", gguf_format="f16")
    assert result.passed, result.summary()
    modelfile = read_modelfile(result.path)
    assert modelfile["system"] == "You are a pirate. Say arr."
    assert ("temperature", "0.0") in modelfile["parameters"] and ("top_k", "0") not in modelfile["parameters"]
    renders = {t.name: t.text for t in result.report.templates}
    assert renders["Modelfile TEMPLATE (as Ollama renders it)"].startswith("<|im_start|>system\nYou are a pirate.")


def test_gguf_without_the_quantizer_says_how_to_build_it(tiny_run, monkeypatch, tmp_path):
    monkeypatch.setattr(gguf, "TOOLS", tmp_path / "no-tools")
    with pytest.raises(ExportError, match="make gguf-tools"):
        export(tiny_run, "tiny", "gguf-q8_0", out=tmp_path / "q8")
    (tmp_path / "no-tools" / "src").mkdir(parents=True)
    (tmp_path / "no-tools" / "src" / "convert_hf_to_gguf.py").write_text("")
    with pytest.raises(ExportError, match="make gguf-quantizer.*f16 and q8_0 work without it"):
        export(tiny_run, "tiny", "gguf-q4_k_m", out=tmp_path / "q4")
    assert not (tmp_path / "q8").exists() and not (tmp_path / "q4").exists()


def test_not_enough_disk_is_refused_before_writing(tiny_run, monkeypatch, tmp_path):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(ExportError, match="Not enough free disk space.*GiB"):
        export(tiny_run, "tiny", "merged16", out=tmp_path / "m16")
    assert not (tmp_path / "m16").exists()


def test_bad_requests_get_plain_messages(tiny_run, tmp_path):
    with pytest.raises(ExportError, match="Unknown export format 'onnx'"):
        export(tiny_run, "tiny", "onnx")
    with pytest.raises(ExportError, match="Unknown preset"):
        export(tiny_run, "tiny", "adapter", preset="Wild")
    with pytest.raises(ExportError, match="There is no run named 'nope'.*Export tab"):
        export(tiny_run, "nope", "adapter")
    (tiny_run.runs / "untrained").mkdir()
    (tiny_run.runs / "untrained" / "run.yaml").write_text("model: {name_or_path: default}\n")
    with pytest.raises(ExportError, match="has no adapter yet"):
        export(tiny_run, "untrained", "adapter")


def test_an_interrupted_export_leaves_nothing_that_looks_finished(tiny_run):
    """Kill the CLI once the files are written but not yet verified: no exports/adapter folder appears
    (only a hidden .tmp one), and the next export clears that and finishes."""
    target = tiny_run.runs / "tiny" / "exports" / "adapter"
    if target.exists():
        shutil.rmtree(target)
    proc = subprocess.Popen([sys.executable, "-m", "engine", "export", "tiny", "--format", "adapter"], cwd=ROOT,
                            env={**os.environ, "WORKBENCH_HOME": str(tiny_run.root)}, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    for line in proc.stderr:
        if "Verifying" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".adapter.")]
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)
    assert (leftovers[0] / "adapter_model.safetensors").exists()  # it was killed after writing, before verifying
    result = export(tiny_run, "tiny", "adapter")
    assert result.passed and _finished(target)["passed"]


def test_the_in_app_answers_are_kept_per_adapter_version(tiny_run):
    from engine.export import verify
    from engine.export.source import open_source

    source = open_source(tiny_run, "tiny")
    first = verify.reference(source)
    kept = json.loads((source.exports / verify.REFERENCE_FILE).read_text())
    assert kept["answers"] == first.answers and kept["device"] == "cpu"
    adapter = source.adapter / "adapter_model.safetensors"
    os.utime(adapter, ns=(adapter.stat().st_atime_ns, adapter.stat().st_mtime_ns + 1))  # a new training result
    assert verify.reference(source).answers == first.answers  # same weights, answers computed again
    assert json.loads((source.exports / verify.REFERENCE_FILE).read_text())["key"] != kept["key"]
