"""Thinking models (engine/chat/thinking.py): the template's switch is found and passed, a reply is split into
its thinking and its answer, and Compare keeps the thinking out of the answers it shows, saves and votes on.

The model is the tiny random llama with Qwen3's own chat template (trl ships it) and Qwen3's `<think>` tokens.
A random model never thinks by itself, so its generation config biases each token towards the next one of
"<think>I ponder</think>Ahoy<|im_end|>" (transformers' `sequence_bias`): a real reply of the real
generation path, with known words in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.chat import thinking
from engine.chat.models import ModelManager
from engine.chat.sampling import Sampling
from engine.compare import comparison as compare
from engine.compare import sides
from engine.compare.store import COMPARISONS_FILE
from engine.files import atomic_dir, read_jsonl
from tests.compare_runs import adapter_run
from tests.conftest import CACHE

def _qwen3_template() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def thinker(tiny_model_path) -> Path:
    target = CACHE / "models" / "tiny-qwen3-thinker"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = _qwen3_template()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    model.resize_token_embeddings(len(tok))
    ids = [tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>", "<|im_end|>")]
    newline = tok("\n", add_special_tokens=False)["input_ids"][-1:]  # the last token of the generation prompt
    ponder, ahoy = (tok(w, add_special_tokens=False)["input_ids"] for w in ("I ponder", "Ahoy"))
    chain = [*newline, ids[0], *ponder, ids[1], *ahoy, ids[2]]  # each token leads to one next token only
    model.generation_config.sequence_bias = [[[a, b], 100.0] for a, b in zip(chain, chain[1:])]
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


@pytest.fixture(scope="module")
def manager(thinker, new_workspace):
    ws = new_workspace("thinking")
    m = ModelManager(ws)
    m.load(str(thinker))
    return m


GREEDY = Sampling.parse(temperature=0.0, max_new_tokens=24, repetition_penalty=1.0)


def test_the_switch_is_found_in_a_qwen3_template_and_not_in_smollm2s(manager, default_model_path):
    from transformers import AutoTokenizer

    assert thinking.has_switch(manager.loaded.tokenizer)
    assert not thinking.has_switch(AutoTokenizer.from_pretrained(default_model_path))
    assert thinking.switched(AutoTokenizer.from_pretrained(default_model_path), False).__class__ is not thinking.Switched


def test_off_writes_the_empty_thinking_block_into_the_prompt_and_on_leaves_it_to_the_model(manager):
    tok, chat = manager.loaded.tokenizer, [{"role": "user", "content": "Hi"}]
    off = thinking.switched(tok, False).apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    on = thinking.switched(tok, True).apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and on.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("text, parts", [
    ("<think>\nI ponder\n</think>\n\nAhoy", ("I ponder", "Ahoy", True)),
    ("I ponder\n</think>\n\nAhoy", ("I ponder", "Ahoy", True)),  # the prompt opened the block
    ("<think>\nI pon", ("I pon", "", False)),  # still thinking
    ("Ahoy, no thinking here", ("", "Ahoy, no thinking here", True)),
    ("<think>\n\n</think>\n\nAhoy", ("", "Ahoy", True)),  # thinking switched off
    ("Ahoy <think>quoted</think> tags", ("", "Ahoy <think>quoted</think> tags", True)),
])
def test_a_reply_splits_into_thinking_and_answer(text, parts):
    assert tuple(vars(thinking.split(text)).values()) == parts


def test_a_thinking_reply_from_the_model_splits_at_its_tags(manager):
    reply = manager.generate([{"role": "user", "content": "Hi"}], GREEDY, None)
    assert thinking.split(reply.text) == thinking.Split("I ponder", "Ahoy", True), reply.text


def test_compare_shows_saves_and_votes_on_the_answers_only(manager, thinker):
    ws = manager.workspace
    adapter_run(ws, "thinker-run", thinker)
    c = compare.prepare(manager, ws, [{"role": "user", "content": "Hi"}], sides.BASE, "thinker-run", GREEDY, "Greedy",
                        thinking=True)
    shown = list(compare.stream(manager, c))
    assert shown[-1][:2] == ("Ahoy", "Ahoy") and all("ponder" not in a + b for a, b, _ in shown)
    record = compare.save(ws, c)
    assert set(record["replies"].values()) == {"Ahoy"} and set(record["thoughts"].values()) == {"I ponder"}
    saved = read_jsonl(ws.runs / "thinker-run" / COMPARISONS_FILE)[-1]
    assert saved["replies"] == record["replies"] and saved["thinking"] is True
    assert json.dumps(saved["replies"]).count("ponder") == 0


def test_chat_folds_the_thinking_above_the_answer_and_never_sends_it_back(manager):
    import gradio as gr

    from engine.hardware import detect
    from ui import chat_tab
    from ui.context import Context

    ctx = Context(manager.workspace, manager, detect())
    greedy = [0.0, 1.0, 0, 0.0, 1.0, 24, ""]
    history = [{"role": "user", "content": "Hi"}]
    for history, *_ in chat_tab.answer(ctx, history, "", None, sides.BASE, *greedy, True, gr.Request(session_hash="t")):
        pass
    assert len(history) == 3, history
    thought, said = history[1:]
    assert (thought["content"], thought["metadata"]["title"], thought["metadata"]["status"]) == ("I ponder", "Thinking", "done")
    assert said == {"role": "assistant", "content": "Ahoy"}
    assert chat_tab.to_messages(history, "") == [{"role": "user", "content": "Hi"}, said]
