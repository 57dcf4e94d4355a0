"""Rendering with the default model's tokenizer: the preview marks exactly what training trains."""

import json
from pathlib import Path

import pytest

from engine.data import load_conversations
from engine.data import store as store_module
from engine.data.render import encode, has_own_template, load_tokenizer, preview
from engine.data.stats import statistics
from engine.data.store import encode_rows

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
CONV = {"messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hello?"},
                     {"role": "assistant", "content": "Ahoy! Arr, matey!"}, {"role": "user", "content": "Bye."},
                     {"role": "assistant", "content": "Fair winds! Arr, matey!"}]}


@pytest.fixture(scope="module")
def tokenizer(default_model_path):
    return load_tokenizer(default_model_path)


def test_preview_marks_each_assistant_reply_and_its_eos(tokenizer, default_model_path):
    assert has_own_template(default_model_path)
    p = preview(CONV, tokenizer)
    trained = [piece for piece, on in p.segments if on]
    assert trained == ["Ahoy! Arr, matey!<|im_end|>", "Fair winds! Arr, matey!<|im_end|>"]
    assert p.text == tokenizer.apply_chat_template(CONV["messages"], tokenize=False)
    assert p.ends_with_eos and p.trained < p.tokens


def test_mask_is_the_one_trl_trains_on(tokenizer, tiny_model_path, tmp_path):
    """The rows go to trl as the worker hands them over (tokenized, with their masks); trl's labels train
    exactly the marked tokens. trl's own marking against its training templates: tests/test_families.py."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from engine.train.tokens import tokenize

    rows = load_conversations(EXAMPLES / "pirate.jsonl")[:8]
    data = tokenize(tokenizer, rows, max_length=4096, assistant_only=True)
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], max_length=None,
                     dataset_num_proc=None)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), args=args,
                         train_dataset=Dataset.from_list(data.rows), processing_class=tokenizer)
    for row, prepared in zip(rows, trainer.train_dataset):
        ours = encode(row, tokenizer)
        assert prepared["input_ids"] == ours["input_ids"]
        assert [label != -100 for label in prepared["labels"]] == [bool(m) for m in ours["assistant_masks"]]


def test_alpaca_fallback_and_forced_chatml(default_model_path):
    alpaca = load_tokenizer(default_model_path, template="alpaca")
    p = preview({"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]}, alpaca)
    assert p.text.startswith("Below is an instruction") and "### Instruction:\nName a colour.\n\n### Response:\n" in p.text
    assert [piece for piece, on in p.segments if on] == ["Blue." + alpaca.eos_token] and p.ends_with_eos
    chatml = load_tokenizer(default_model_path, template="chatml")
    text = preview({"messages": CONV["messages"][1:3]}, chatml).text
    assert text == "<|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\nAhoy! Arr, matey!<|im_end|>\n"


def test_text_rows_train_every_token_and_end_with_eos(tokenizer):
    p = preview({"text": "Once upon a time there was a ship."}, tokenizer)
    assert p.segments == [("Once upon a time there was a ship.<|im_end|>", True)] and p.ends_with_eos


def test_tool_calls_stay_visible_to_a_template_without_tools(tokenizer):
    row = {"messages": [{"role": "user", "content": "Add 1 and 2."},
                        {"role": "assistant", "content": "", "tool_calls": [
                            {"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}]},
                        {"role": "tool", "content": "3"}, {"role": "assistant", "content": "It is 3."}],
           "tools": json.dumps([{"name": "add", "description": "Adds numbers"}])}
    p = preview(row, tokenizer)
    trained = [piece for piece, on in p.segments if on]
    assert trained[0] == '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><|im_end|>'
    assert p.text.startswith('<|im_start|>system\nYou can call these tools:\n[{"name": "add"')
    assert "<|im_start|>tool\n3<|im_end|>" in p.text


def test_statistics_of_the_pirate_set(tokenizer):
    rows = load_conversations(EXAMPLES / "pirate.jsonl")
    s = statistics(rows, tokenizer, max_seq_length=160)
    assert s.rows == s.measured == len(rows) and not s.sampled
    assert sum(b["examples"] for b in s.histogram()) == len(rows)
    assert 0 < s.truncated_share < 1
    assert s.tokens_per_epoch == sum(min(n, 160) for n in s.lengths) < s.total_tokens
    assert 0 < s.trained_tokens < s.tokens_per_epoch and s.no_eos == 0
    assert (s.turns_min, s.turns_max) == (4, 6)
    sampled = statistics(rows, tokenizer, max_seq_length=160, limit=20)
    assert sampled.sampled and sampled.measured <= 20 and sampled.rows == len(rows)


def test_rendered_set_is_cached_by_fingerprint(tokenizer, tmp_path, monkeypatch):
    rows = load_conversations(EXAMPLES / "pirate.jsonl")[:10]
    first = encode_rows(rows, tokenizer, cache_dir=tmp_path)
    assert first["input_ids"] == [encode(r, tokenizer)["input_ids"] for r in rows]
    assert first["assistant_masks"] == [encode(r, tokenizer)["assistant_masks"] for r in rows]
    encode_rows(rows[:5], tokenizer, cache_dir=tmp_path)  # other rows: their own entry
    assert len(list(tmp_path.iterdir())) == 2

    def no_tokenising(*args):
        raise AssertionError("tokenised again instead of loading the cache")

    monkeypatch.setattr(store_module, "encode", no_tokenising)
    assert encode_rows(rows, tokenizer, cache_dir=tmp_path) == first
