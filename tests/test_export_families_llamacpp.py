"""Every family of engine/chat/families.yaml, exported as GGUF (f16 and q8_0) through the app's exporter and run
by llama.cpp itself (llama-completion --jinja, the chat template embedded in the file): on a tiny model of the
family's architecture with its real template and special tokens (SmolLM2's vocabulary; Mistral Nemo with
Nemo's tekken vocabulary; Qwen2.5 with its own, since for a qwen2 config transformers 5 loads Qwen2Tokenizer,
whose split rules on SmolLM2's vocabulary hash as no pre-tokenizer llama.cpp's converter knows; Gemma 2 and
Phi-3 with a small sentencepiece tokenizer.model laid out as theirs, since their converters read no other),
the report's llama.cpp check passes (f16: each token of llama.cpp's reply is the in-app model's first choice
or a near tie; q8_0: runs cleanly, beside its floor) and llama.cpp stops at the end of the turn where the in-
app model does; the Modelfile written beside the file renders every chat as training does, rendered by Go.

Random tiny weights give flat logits, near ties everywhere, where greedy decoding is decided by rounding
and any comparison with another runtime is meaningless. So each tiny model is first trained (full
weights, a few dozen Adam steps) to answer the verification prompts with a short reply and its end of
turn, rendered by the family's template: like a real model, it then has peaked, deterministic
predictions, and a reply that ends, which is what lets "stops at the end of turn" be checked."""

from __future__ import annotations

import pytest
import torch
from export_runs import ensure_llama_cpp, make_run
from go_judge import go_render

from engine.chat import families
from engine.chat.templates import prepare_tokenizer
from engine.data.render import encode
from engine.export import llamacpp, verify
from engine.export.exporter import export
from engine.export.modelfile import read_modelfile, render_for_ollama
from tests.model_shapes import family_model, family_tokenizer, qwen25_tokenizer, sentencepiece_tokenizer
from tests.test_export_go_templates import chats_for
from tests.test_families import CASES

REPLIES = ("Paris is the capital of France.", "Red leaves drift down, autumn is here.",
           "A neural network is layers of simple units. It learns from examples.")
SENTENCEPIECE = {"gemma2", "phi3"}  # converted from the tokenizer.model their Hub folders ship


def tokenizer_of(key: str, default_model_path, folder):
    if key == "qwen2.5":
        return prepare_tokenizer(qwen25_tokenizer(families.by_key(key).template_text()))
    if key in SENTENCEPIECE:
        return prepare_tokenizer(sentencepiece_tokenizer(folder, CASES[key][1], families.by_key(key).template_text()))
    if key == "mistral-nemo":  # as tests/test_mistral_common.py builds it: transformers' tekken converter
        from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

        from tests.test_mistral_common import TEKKEN

        return prepare_tokenizer(convert_tekken_tokenizer(str(TEKKEN), chat_template=families.by_key(key).template_text()))
    return prepare_tokenizer(family_tokenizer(default_model_path, CASES[key][1], families.by_key(key).template_text()))


def model_of(key: str, tokenizer):
    if key != "mistral-nemo":
        return family_model(CASES[key][0], tokenizer)
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)  # as tests/test_mistral_common.py's Nemo-shaped model: head_dim 32, Nemo's vocabulary
    return MistralForCausalLM(MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=1024, rope_theta=1_000_000.0, bos_token_id=1,
        eos_token_id=2, tie_word_embeddings=True))


def taught(model, tokenizer, steps: int = 100):
    """Train the whole tiny model on the verification prompts' replies (assistant tokens only)."""
    rows = [encode({"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r}]}, tokenizer)
            for p, r in zip(verify.PROMPTS, REPLIES)]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        for row in rows:
            ids = torch.tensor([row["input_ids"]])
            labels = torch.tensor([[t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"])]])
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    return loss.item()


@pytest.fixture(scope="module", params=sorted(CASES))
def family_run(request, new_workspace, default_model_path, tmp_path_factory):
    ensure_llama_cpp("runtime")
    key = request.param
    folder = tmp_path_factory.mktemp("models") / f"tiny-{key}"
    tokenizer = tokenizer_of(key, default_model_path, folder)
    model = model_of(key, tokenizer)
    assert taught(model, tokenizer) < 0.05  # it learned the replies: peaked predictions
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ws = new_workspace(f"export-{key}")
    make_run(ws, key, str(folder), folder, scale=0.002)
    return ws, key, tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gguf-f16", "gguf-q8_0"])
def test_the_familys_gguf_chats_in_llama_cpp_through_its_embedded_template(family_run, fmt):
    ws, key, tokenizer = family_run
    result = export(ws, key, fmt)
    summary = result.summary()
    print(summary)
    report, runtime = result.report, result.report.runtime
    assert runtime.built and not runtime.problem and runtime.passed if fmt == "gguf-f16" else runtime.runs_cleanly
    assert result.passed, summary
    # the template embedded in the file is the training one (the report renders it), llama.cpp read it (--jinja)
    assert any(t.name == "exported tokenizer's template" and t.same for t in report.templates), summary
    # and the Modelfile beside it, rendered by Go as Ollama would, gives the training prompt of every chat
    folder = result.path if result.path.is_dir() else result.path.parent
    go = read_modelfile(folder / "Modelfile")["template"]
    for what, chat in chats_for(tokenizer, tokenizer.chat_template).items():
        assert go_render(go, chat) == render_for_ollama(tokenizer, tokenizer.chat_template, chat), (key, what)
    # the in-app model ends every reply; llama.cpp ended each one where it did, with the same words
    assert all(a.reference_stopped and a.stopped for a in runtime.answers), summary
    assert sum(a.reply == a.reference for a in runtime.answers) >= 2, summary
    assert all(a.reply.strip() for a in runtime.answers)
    assert "llama.cpp: " in summary and ", stopped at end of turn" in summary
    if fmt == "gguf-f16":
        assert all(max(a.gaps) <= llamacpp.NEAR_TIE for a in runtime.answers) and "the largest gap is" in summary
