"""Exports of the real default model (SmolLM2-135M) against the in-app model (base + adapter), 64 greedy
tokens on fixed prompts: adapter, merged16 and gguf-f16 must answer identically; quantised formats
must reach their stated argmax-agreement floors (q8_0 95%, q4_k_m 75%, merged4 75%)."""

from __future__ import annotations

import pytest
import torch
from export_runs import ensure_llama_cpp, make_run

from engine.export import verify
from engine.export.exporter import export

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(new_workspace, default_model_path):
    ensure_llama_cpp("quantizer")
    ws = new_workspace("export-default")
    make_run(ws, "persona", "default", default_model_path, scale=0.03)
    return ws


def test_the_stand_in_adapter_changes_the_answers(default_run):
    from engine.export.source import open_source

    source = open_source(default_run, "persona")
    ref = verify.reference(source)
    model = verify.in_app_model(source)
    with model.disable_adapter():
        plain = verify.greedy(model, ref.prompt_ids)
    assert plain != ref.answers  # so an export that dropped the adapter could not pass


@pytest.mark.parametrize("fmt", ["adapter", "merged16", "gguf-f16"])
def test_exact_formats_answer_identically_to_the_in_app_model(default_run, fmt):
    result = export(default_run, "persona", fmt)
    print(result.summary())
    assert result.report.identical and result.passed, result.summary()
    assert sum(a.reference_tokens for a in result.report.answers) > 64  # real answers, not one token each


@pytest.mark.parametrize("fmt, floor", [("gguf-q8_0", 0.95), ("gguf-q4_k_m", 0.75)])
def test_quantised_gguf_reaches_its_agreement_floor(default_run, fmt, floor):
    result = export(default_run, "persona", fmt)
    print(result.summary())
    assert result.report.argmax_agreement >= floor and result.passed, result.summary()
    assert all(t.same for t in result.report.templates) and not result.report.problems


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="merged4 needs CUDA and bitsandbytes")
def test_merged4_reaches_its_agreement_floor(default_run):
    result = export(default_run, "persona", "merged4")
    print(result.summary())
    assert result.report.argmax_agreement >= 0.75 and result.passed, result.summary()
