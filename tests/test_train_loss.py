"""The CPU loss against transformers' own: padded and padding-free batches give the loss of the rows
computed one by one, only assistant tokens count, and the tokenisation counts what trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig

from engine.chat.templates import prepare_tokenizer
from engine.train.tokens import tokenize
from engine.train.trainer import WorkbenchTrainer

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Ahoy there."}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sea salty?"},
                  {"role": "assistant", "content": "Rivers carry salt from rocks, and the sun takes the water."},
                  {"role": "user", "content": "Really?"}, {"role": "assistant", "content": "Aye."}]},
    {"messages": [{"role": "user", "content": "Count to five."}, {"role": "assistant", "content": "1 2 3 4 5"}]},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path: Path):
    return prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_model_path))


def test_tokenize_learns_only_assistant_replies_and_cuts_at_the_maximum(tokenizer):
    data = tokenize(tokenizer, CONVERSATIONS, max_length=1000, assistant_only=True)
    assert (data.conversations, data.truncated, data.dropped) == (3, 0, 0)
    learned = [tokenizer.decode([t for t, m in zip(r["input_ids"], r["assistant_masks"]) if m]) for r in data.rows]
    assert learned[1] == "Rivers carry salt from rocks, and the sun takes the water.<|im_end|>Aye.<|im_end|>"
    assert data.tokens == sum(len(r["input_ids"]) for r in data.rows) == sum(data.lengths)
    assert data.trained_tokens == sum(sum(r["assistant_masks"]) for r in data.rows)

    short = tokenize(tokenizer, CONVERSATIONS, max_length=30, assistant_only=True)
    assert max(short.lengths) == 30 and short.truncated >= 1 and short.longest == data.longest
    # A conversation whose replies all fall past the cut has nothing left to learn, so it is left out.
    tiny = tokenize(tokenizer, CONVERSATIONS, max_length=12, assistant_only=True)
    assert tiny.dropped == 3 and tiny.rows == []
    everything = tokenize(tokenizer, CONVERSATIONS, max_length=1000, assistant_only=False)
    assert everything.trained_tokens == everything.tokens and "assistant_masks" not in everything.rows[0]


@pytest.mark.parametrize("family", ["llama3_1", "llama3_2"])
def test_llama_3_1_and_3_2_templates_learn_only_replies_and_render_unchanged(tiny_model_path, family):
    """trl marks no copy of these two models' own templates; the app trains with them unchanged and
    learns each reply with its <|eot_id|>. (The models' tokens are added to the tiny tokenizer.)"""
    from trl.chat_template_utils import llama3_1_chat_template, llama3_2_chat_template

    original = {"llama3_1": llama3_1_chat_template, "llama3_2": llama3_2_chat_template}[family]
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "additional_special_tokens": [
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = original
    tok = prepare_tokenizer(tok)
    for conv in CONVERSATIONS:
        assert tok.apply_chat_template(conv["messages"], tokenize=False) == tok.apply_chat_template(
            conv["messages"], chat_template=original, tokenize=False)
    data = tokenize(tok, CONVERSATIONS, max_length=1000, assistant_only=True)
    learned = [tok.decode([t for t, m in zip(r["input_ids"], r["assistant_masks"]) if m]) for r in data.rows]
    assert learned[1] == "Rivers carry salt from rocks, and the sun takes the water.<|eot_id|>Aye.<|eot_id|>"
    assert learned[0] == "Ahoy there.<|eot_id|>"


def reference_loss(model, rows) -> torch.Tensor:
    """Mean over every learned token of the rows, each row run alone through transformers' own loss."""
    total, count = torch.tensor(0.0), 0
    for r in rows:
        ids = torch.tensor([r["input_ids"]])
        labels = torch.tensor([[t if m else -100 for t, m in zip(r["input_ids"], r["assistant_masks"])]])
        n = int((labels[:, 1:] != -100).sum())
        total = total + model(input_ids=ids, labels=labels).loss * n
        count += n
    return total / count


@pytest.mark.parametrize("padding_free", [True, False])
def test_the_cpu_loss_matches_transformers_loss(tiny_model_path, tokenizer, tmp_path, padding_free):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    data = tokenize(tokenizer, CONVERSATIONS, max_length=1000, assistant_only=True)
    trainer = WorkbenchTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(data.rows),
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, padding_free=padding_free,
                       max_length=None, per_device_train_batch_size=3, report_to=[]),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert ("attention_mask" in batch) != padding_free  # padding-free batches are one row of real tokens
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        expected = reference_loss(trainer.model, data.rows)
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)
    assert trainer.real_tokens == data.tokens


@pytest.mark.parametrize("padding_free", [True, False])
def test_the_logged_real_token_count_against_transformers_non_padding_count(tiny_model_path, tokenizer, tmp_path,
                                                                            padding_free):
    """tokens/s counts every token trained on. transformers' `include_num_input_tokens_seen="non_padding"`
    counts the same in padded batches, but a padding-free batch (no attention mask) as its tokens other
    than the pad token, which is SmolLM2's end of turn: each turn's end would go uncounted. So the trainer
    keeps its own count. The step's log also carries the token accuracy of the CPU loss."""
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    data = tokenize(tokenizer, CONVERSATIONS, max_length=1000, assistant_only=True)
    trainer = WorkbenchTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(data.rows),
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, padding_free=padding_free, max_length=None,
                       per_device_train_batch_size=3, max_steps=1, logging_steps=1,
                       save_strategy="no", report_to=[], include_num_input_tokens_seen="non_padding"),
    )
    logged = []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs and "loss" in logs and logged.append(logs)

    trainer.add_callback(Logs())
    trainer.train()
    ends_of_turn = sum(r["input_ids"].count(tokenizer.pad_token_id) for r in data.rows)
    assert ends_of_turn >= 2 * len(data.rows)  # every turn of every conversation ends with one
    assert logged[0]["real_tokens"] == data.tokens  # the one step trained all three conversations
    assert trainer.state.num_input_tokens_seen == data.tokens - (ends_of_turn if padding_free else 0)
    assert 0 <= logged[0]["mean_token_accuracy"] <= 1


@pytest.mark.parametrize("checkpointing", [True, False])
def test_a_step_trains_the_adapter_with_or_without_gradient_checkpointing(tiny_model_path, tokenizer, tmp_path,
                                                                          checkpointing):
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    data = tokenize(tokenizer, CONVERSATIONS, max_length=1000, assistant_only=True)
    trainer = WorkbenchTrainer(
        model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(data.rows),
        args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=True, padding_free=True, max_length=None,
                       per_device_train_batch_size=3, max_steps=2, learning_rate=1e-2,
                       gradient_checkpointing=checkpointing, save_strategy="no", report_to=[]),
    )
    trainer.train()
    lora_b = [n for n in before if "lora_B" in n]
    assert lora_b and all(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if n in lora_b)
    base = [n for n, p in trainer.model.named_parameters() if not p.requires_grad]
    assert base  # the base model stays frozen


def _app_trainer(tiny_model_path, tokenizer, rows, train: dict, output_dir):
    """The trainer with the arguments the worker gives trl for a run with these train settings, on this
    machine; and the tokenised rows."""
    from engine.hardware import detect
    from engine.train.backend import choose
    from engine.train.config import validate
    from engine.train.trainer import training_args

    data = tokenize(tokenizer, rows, max_length=1000, assistant_only=True)
    config = validate({"model": {"name_or_path": str(tiny_model_path)}, "dataset": "unused.jsonl", "train": train})
    settings, _ = choose(config, detect())
    trainer = WorkbenchTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_path), processing_class=tokenizer,
                               train_dataset=Dataset.from_list(data.rows),
                               args=training_args(config, settings, output_dir))
    return trainer, data


def test_padded_batches_group_conversations_of_similar_length(tiny_model_path, tokenizer, tmp_path):
    """'padded' batching pads each batch only to its longest row, and the run's arguments batch rows
    of similar length together, so little is padding. The same rows in random batches are mostly
    padding."""
    rows = [{"messages": [{"role": "user", "content": "Hi?"},
                          {"role": "assistant", "content": "Arr. " * (3 if i % 2 else 150)}]} for i in range(128)]
    trainer, data = _app_trainer(tiny_model_path, tokenizer, rows,
                                 {"batch_size": 4, "gradient_accumulation": 1, "batching": "padded"}, tmp_path)

    def padding_share() -> float:
        batches = list(trainer.get_train_dataloader())
        assert sum(int(b["attention_mask"].sum()) for b in batches) == data.tokens  # every row, once
        return 1 - data.tokens / sum(b["input_ids"].numel() for b in batches)

    assert trainer.args.train_sampling_strategy == "group_by_length"
    grouped = padding_share()
    trainer.args.train_sampling_strategy = "random"
    shuffled = padding_share()
    assert grouped < 0.15 and shuffled > 0.3, (grouped, shuffled)


@pytest.mark.parametrize("batching", ["padding_free", "padded"])
def test_the_end_of_each_reply_is_learned_where_it_is_also_the_pad_token(tiny_model_path, tokenizer, tmp_path,
                                                                         batching):
    """SmolLM2's pad token is its end-of-turn token, <|im_end|>: batches must still label it, or the
    tuned model never learns to stop."""
    assert tokenizer.pad_token == "<|im_end|>"
    rows = [{"messages": [{"role": "user", "content": "Hi?" * (i + 1)}, {"role": "assistant", "content": "Arr!"}]}
            for i in range(4)]
    trainer, _ = _app_trainer(tiny_model_path, tokenizer, rows, {"batch_size": 4, "batching": batching}, tmp_path)
    labels = next(iter(trainer.get_train_dataloader()))["labels"]
    assert tokenizer.decode(labels[labels != -100]) == "Arr!<|im_end|>" * 4
