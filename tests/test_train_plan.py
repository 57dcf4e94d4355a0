"""The plan shown before Start: counts match what trains, the memory verdict and its one-click fixes,
settings the machine cannot honour, and a time estimate from a measured speed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.hardware import Hardware, detect
from engine.train import checkpointing, plan, runs
from engine.train.advice import advice_notes, memory_advice
from engine.train.config import validate, with_changes
from tests.model_shapes import config_only, write_data


@dataclass(frozen=True)
class Machine(Hardware):
    """This machine's shape with a chosen amount of free memory."""

    free: int = 0

    def free_bytes(self) -> int:
        return self.free


def machine(free_gb: float, device: str = "cpu", bitsandbytes: bool = False) -> Machine:
    return Machine(device, f"test {device}", device == "cuda", int(64e9), "transformers", bitsandbytes,
                   free=int(free_gb * 1e9))


@pytest.fixture
def config(tiny_model_path: Path, tmp_path: Path):
    rows = [{"messages": [{"role": "user", "content": f"Tell me about number {i}."},
                          {"role": "assistant", "content": f"Number {i} is fine." + " Arr!" * (i * 3)}]}
            for i in range(20)]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return validate({
        "model": {"name_or_path": str(tiny_model_path), "max_seq_length": 64},
        "dataset": str(data),
        "train": {"epochs": 3, "batch_size": 4, "gradient_accumulation": 2, "save_steps": 100},
        "probes": {"prompts": []},
    })


def test_counts_steps_and_truncation(config, workspace):
    p = plan.make(config, workspace, machine(20))
    assert (p.conversations, p.rows, p.dropped) == (20, 20, 0)
    assert 0 < p.truncated < 20 and p.truncated_share == p.truncated / 20 and p.longest > 64
    assert p.steps_per_epoch == 3 and p.total_steps == 9  # 20 rows / batch 4 = 5 batches -> 3 updates an epoch
    assert p.tokens_per_epoch <= 20 * 64 and p.trained_tokens_per_epoch < p.tokens_per_epoch
    assert p.verdict == "fits" and p.fixes == [] and p.problems == []
    assert "9 (3 an epoch x 3 epochs)" in p.summary() and "fits" in p.summary()
    longer = plan.make(with_changes(config, {"model.max_seq_length": 512}), workspace, machine(20))
    assert longer.truncated == 0 and longer.tokens_per_epoch > p.tokens_per_epoch


def test_too_little_memory_gives_a_verdict_and_fixes_that_help(config, workspace):
    need = plan.make(config, workspace, machine(20)).memory.total
    assert plan.verdict(need, need / 0.9) == "tight" and plan.verdict(need, need * 2) == "fits"
    p = plan.make(config, workspace, machine(need / 1e9 * 0.8))
    assert p.verdict == "will not fit"
    labels = [f.label for f in p.fixes]
    assert any(l.startswith("Batch 2 with accumulation 4") for l in labels)
    assert any(l.startswith("Turn on gradient checkpointing") for l in labels)
    for fix in p.fixes:
        assert fix.memory_gb * 1e9 < need, fix
        with_changes(config, fix.changes)  # each fix is a valid config change

    gpu = plan.make(config, workspace, machine(need / 1e9 * 0.5, device="cuda", bitsandbytes=True))
    four_bit = next(f for f in gpu.fixes if f.changes == {"model.load_in_4bit": True})
    assert four_bit.memory_gb < gpu.memory.total / 1e9
    assert gpu.settings.optimizer == "paged_adamw_8bit" and gpu.settings.gradient_checkpointing


def test_settings_this_machine_cannot_honour_are_named(config, workspace):
    wants_gpu = with_changes(config, {"model.load_in_4bit": True, "train.optimizer": "adamw_8bit"})
    p = plan.make(wants_gpu, workspace, machine(20))
    assert len(p.problems) == 2
    assert p.problems[0].startswith("model.load_in_4bit") and p.problems[1].startswith("train.optimizer")
    assert "Cannot start" in p.summary()


def test_advice_notes_follow_the_tutorial(config):
    odd = with_changes(config, {"lora.r": 8, "lora.alpha": 50, "train.epochs": 20, "lora.dropout": 0.0})
    notes = " ".join(advice_notes(odd, rows=100))
    assert "r or 2r" in notes and "over-fits" in notes and "dropout" in notes
    assert advice_notes(config, rows=100) == []


def test_out_of_memory_advice_is_concrete(config):
    advice = memory_advice(config, can_4bit=True)
    assert "batch size to 2 and gradient accumulation to 4" in advice and "4-bit" in advice
    assert "4-bit" not in memory_advice(config, can_4bit=False)


def test_a_measured_speed_gives_a_time_estimate(config, workspace):
    first = plan.make(config, workspace, detect())  # nothing has trained here yet: an assumed speed, said so
    assert first.seconds > 0 and not first.speed_measured and "an estimate" in first.summary()
    speed = plan.measure(config, workspace, steps=2)
    assert speed["tokens_per_s"] > 0 and speed["peak_memory_gb"] > 0
    assert runs.list_runs(workspace) == [] and not list(workspace.root.glob("measure-*"))  # nothing left behind
    p = plan.make(config, workspace, detect())
    assert p.tokens_per_s == speed["tokens_per_s"] and p.seconds > 0 and p.speed_source == "from a few measured steps"
    assert p.speed_measured and "an estimate" not in p.summary()
    assert "tokens/s" in p.summary()


def test_padding_free_on_unsloth_without_a_varlen_attention_is_flagged(config, monkeypatch):
    """No GPU exists here: the Settings stand in for an unsloth machine, and the lookups for one with a
    torch whose varlen attention lacks grouped-query support (2.11), no xformers, no flash-attn; with
    torch's flash kernel on the card (the lent H200) engine/train/varlen.py serves instead."""
    import dataclasses
    import importlib.util

    from engine.train import backend, varlen
    from engine.train.backend import Settings, slow_attention

    gpu = Settings("cuda", "unsloth", "bfloat16", "bf16", "adamw_8bit", True)
    assert backend.torch_varlen_attention()  # torch 2.13, as requirements.txt pins it: no warning
    assert slow_attention(config, gpu) is None

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name in ("xformers", "flash_attn") else find_spec(name))
    monkeypatch.setattr(backend, "torch_varlen_attention", lambda: False)
    assert "Install torch 2.12 or newer" in slow_attention(config, gpu) and "'padded'" in slow_attention(config, gpu)
    assert slow_attention(with_changes(config, {"train.batching": "packed"}), gpu)
    assert slow_attention(with_changes(config, {"train.batching": "padded"}), gpu) is None
    assert slow_attention(config, dataclasses.replace(gpu, backend="transformers")) is None
    monkeypatch.setattr(varlen, "available", lambda: True)  # torch 2.11 on an H200: the flash kernel is there
    assert slow_attention(config, gpu) is None


def test_a_second_plan_of_the_same_data_does_not_tokenise_again(config, workspace, monkeypatch):
    from engine.data import store

    first = plan.make(config, workspace, machine(20))
    assert any(store.token_cache(workspace).iterdir()) and store.list_datasets(workspace) == []  # not a data set

    def no_tokenising(*args):
        raise AssertionError("tokenised again instead of loading the cache")

    monkeypatch.setattr(store, "encode", no_tokenising)
    again = plan.make(config, workspace, machine(20))
    assert (again.total_steps, again.tokens_per_epoch) == (first.total_steps, first.tokens_per_epoch)


H200 = Machine("cuda", "NVIDIA H200", True, int(150e9), "unsloth", True, free=int(140e9))
H200_RESULTS = Path(__file__).parent.parent / "bench" / "results"  # bench/gpu_train.py on an H200, 2026-11-28


@pytest.mark.parametrize("shape, four_bit, results", [("llama-3.1-8b", True, "train-6-gpu1"),
                                                      ("llama-3.2-1b", False, "train-6-gpu2")])
def test_the_gpu_memory_estimate_covers_the_peak_measured_on_an_h200(shape, four_bit, results, tmp_path, workspace):
    """No GPU here: the peaks are the ones bench/gpu_train.py measured on an H200 for the worker on padded
    batches of the bench's chat-like rows (its first batch holds the 16 longest: 16 x 2048 tokens), and
    the machine stands in for that one. The plan must not promise less than was used, nor ask for
    much more (its estimate used to keep every layer's input on the GPU, which unsloth moves to host
    memory: about twice the peak)."""
    measured = json.loads((H200_RESULTS / f"2026-11-28-NVIDIA_H200-{results}.json").read_text())
    row = next(r for r in measured["results"] if r["stack"] == "worker-padded" and r["shape"] == shape)
    config = validate({"model": {"name_or_path": str(config_only(shape, tmp_path)), "load_in_4bit": four_bit,
                                 "max_seq_length": 2048},
                       "dataset": str(write_data("variable", tmp_path / "rows.jsonl", n=480)),
                       "lora": {"r": 16, "alpha": 16, "gradient_checkpointing": "on"},  # as measured: every layer
                       "train": {"batch_size": 16, "batching": "padded"}})
    estimate = plan.make(config, workspace, H200).memory.total / 2**30
    assert row["peak_gib"] < estimate < 1.3 * row["peak_gib"], (estimate, row["peak_gib"])


@pytest.mark.parametrize("shape, four_bit, results", [("llama-3.1-8b", True, "train-6-gpu3"),
                                                      ("llama-3.2-1b", False, "train-6-gpu2")])
def test_without_checkpointing_the_gpu_estimate_covers_the_peak_measured_on_an_h200(shape, four_bit, results,
                                                                                   tmp_path, workspace):
    """As above, for the worker with gradient checkpointing off on padding-free batches: the estimate
    for the largest batch those steps trained (from the run's per-step events) against their peak."""
    from engine.train.backend import choose

    row = next(r for r in json.loads((H200_RESULTS / f"2026-11-28-NVIDIA_H200-{results}.json").read_text())["results"]
               if r["stack"] == "worker-no-checkpointing")
    run = f"{shape}-{4 if four_bit else 16}-worker-no-checkpointing-variable"
    events = (H200_RESULTS / "events" / f"2026-11-28-NVIDIA_H200-train-6-{run}.jsonl").read_text().splitlines()
    totals = [0] + [e["tokens"] for e in map(json.loads, events) if e.get("type") == "step"]
    largest = max(b - a for a, b in zip(totals, totals[1:]))
    config = validate({"model": {"name_or_path": str(config_only(shape, tmp_path)), "load_in_4bit": four_bit,
                                 "max_seq_length": 2048},
                       "dataset": "unused.jsonl", "lora": {"r": 16, "alpha": 16, "gradient_checkpointing": "off"},
                       "train": {"batch_size": 16}})
    settings, _ = choose(config, H200)
    assert not settings.gradient_checkpointing
    _, model_shape = plan.tokenizer_and_shape(config, workspace)
    estimate = plan.estimate_memory(model_shape, config, settings, largest).total / 2**30
    assert row["peak_gib"] < estimate < 1.4 * row["peak_gib"], (estimate, row["peak_gib"], largest)


def _variable_8b(tmp_path, **lora):
    return validate({"model": {"name_or_path": str(config_only("llama-3.1-8b", tmp_path)), "load_in_4bit": True,
                               "max_seq_length": 2048},
                     "dataset": str(write_data("variable", tmp_path / "rows.jsonl", n=400)),
                     "lora": {"r": 16, "alpha": 16, **lora}, "train": {"batch_size": 16}})


def _fewest_that_fit(p, workspace) -> bool:
    """Whether the layers the plan checkpoints on the largest batch fit within its margin and one fewer would not."""
    choice = p.checkpointing
    _, shape = plan.tokenizer_and_shape(p.config, workspace)
    tokens = plan.largest_batch_tokens([min(n, 2048) for n in _lengths(p, workspace)], p.config)
    one_fewer = dataclasses.replace(choice.settings, checkpointed_layers=choice.most - 1)
    return (p.memory.total <= 0.8 * p.free_bytes
            and plan.estimate_memory(shape, p.config, one_fewer, tokens).total > 0.8 * p.free_bytes)


def test_the_plan_checkpoints_the_fewest_layers_each_batch_fits_and_says_what_it_gains(tmp_path, workspace,
                                                                                       monkeypatch):
    """The bench's 8B run in 4-bit, batch 16 of chat-like rows, on an H200 and under a 24 GiB cap: the largest
    batch the data can make (16 x 2048) fits with the layers the plan starts with; each smaller batch gets
    the fewest checkpointed layers whose estimate for it stays within the margin, so a batch of average rows
    recomputes fewer; said in words with the expected gain; fewer on the larger card."""
    full = plan.make(_variable_8b(tmp_path), workspace, H200)
    monkeypatch.setenv("WORKBENCH_GPU_MEMORY_GIB", "24")
    capped = plan.make(_variable_8b(tmp_path), workspace, H200)
    assert capped.free_bytes == 24 * 2**30 and full.free_bytes == H200.free
    _, shape = plan.tokenizer_and_shape(full.config, workspace)
    for p in (full, capped):
        choice = p.checkpointing
        assert choice.chosen and choice.layers == 32 and choice.batch_size == 16 and 0 < choice.most
        assert _fewest_that_fit(p, workspace) and p.verdict == "fits"
        assert choice.largest_tokens > 2.5 * choice.typical_tokens and choice.layers_for(choice.largest_tokens) == choice.most
        for k, limit in enumerate(choice.limits):  # the most tokens k checkpointed layers hold within the margin
            settings = dataclasses.replace(choice.settings, checkpointed_layers=k)
            assert plan.estimate_memory(shape, p.config, settings, limit).total <= 0.8 * p.free_bytes
            assert limit == choice.largest_tokens or \
                plan.estimate_memory(shape, p.config, settings, limit + 1).total > 0.8 * p.free_bytes
        assert choice.checkpointed == choice.layers_for(choice.typical_tokens) < choice.most
        assert choice.layers_for(choice.typical_tokens // 2) <= choice.checkpointed
        assert choice.need_bytes <= 0.8 * p.free_bytes
        assert (f"checkpointing {choice.checkpointed} of 32 layers on a batch of average rows "
                f"({choice.typical_tokens:,} tokens), up to {choice.most} on larger ones") in p.summary()
        assert f"about {choice.gain:.2f}x the speed of checkpointing all" in p.summary()
    # Under 24 GiB the largest batch needs every layer checkpointed, and an average one a few fewer.
    assert full.checkpointing.checkpointed == 0 < full.checkpointing.most < capped.checkpointing.most == 32
    assert 1 < capped.checkpointing.gain < full.checkpointing.gain == pytest.approx(1 / (1 - checkpointing.RECOMPUTE_SHARE))


def test_where_no_checkpointing_fits_the_plan_halves_the_batch_for_the_same_effective_batch(tmp_path, workspace,
                                                                                          monkeypatch):
    monkeypatch.setenv("WORKBENCH_GPU_MEMORY_GIB", "12")
    choice = plan.make(_variable_8b(tmp_path), workspace, H200).checkpointing
    assert choice.batch_size < 16 and choice.batch_size * choice.gradient_accumulation == 16 * 4  # as asked
    assert "the same effective batch" in choice.words()


def test_the_persons_layer_count_is_kept(tmp_path, workspace):
    p = plan.make(_variable_8b(tmp_path, checkpointed_layers=12), workspace, H200)
    assert (p.checkpointing.checkpointed, p.checkpointing.chosen) == (12, False)
    assert p.checkpointing.limits is None and p.checkpointing.layers_for(1) == 12  # on every batch
    assert p.settings.checkpointed_layers == 12 and "(your setting)" in p.summary()
    every = plan.make(_variable_8b(tmp_path, gradient_checkpointing="on"), workspace, H200)
    assert every.checkpointing.checkpointed == 32 and every.memory.total < p.memory.total


def _lengths(p, workspace):
    from engine.chat.templates import prepare_tokenizer
    from engine.data import load_conversations
    from engine.train.tokens import split, tokenize

    tokenizer, _ = plan.tokenizer_and_shape(p.config, workspace)
    prepare_tokenizer(tokenizer, template_choice=p.config.template)
    rows, _ = split(load_conversations(p.config.dataset, workspace=workspace), p.config.train)
    return tokenize(tokenizer, rows, 2048, True).lengths


def test_checkpointing_some_layers_gives_the_loss_and_gradients_of_checkpointing_all(config, workspace):
    """Partial checkpointing on the transformers backend (the CPU here): the checkpointed layers run their
    forward again in backward, the others do not, and the loss and the adapter's gradients are those of
    checkpointing every layer."""
    import torch

    from engine.chat.models import resolve_model
    from engine.train import backend

    config = with_changes(config, {"lora.dropout": 0.0, "lora.gradient_checkpointing": "on"})
    settings = backend.resolve(config, detect())
    path = resolve_model(config.model.name_or_path, workspace, anywhere=True)
    ids = torch.arange(5, 69).reshape(2, 32)

    def step(k):
        model, _ = backend.load(config, dataclasses.replace(settings, checkpointed_layers=k), path)
        model.train()
        layers = model.get_base_model().model.layers
        checkpointed = backend.checkpoint_layers(model, dataclasses.replace(settings, checkpointed_layers=k))
        assert checkpointed == (len(layers) if k is None else k)
        calls = [0] * len(layers)
        for i, layer in enumerate(layers):  # counts each run of the layer's attention, recomputations too
            forward = layer.self_attn.forward

            def counted(*args, forward=forward, i=i, **kwargs):
                calls[i] += 1
                return forward(*args, **kwargs)

            layer.self_attn.forward = counted
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        return loss.item(), grads, calls

    loss_all, grads_all, calls_all = step(None)
    n = len(calls_all)
    assert n >= 2
    loss_some, grads_some, calls_some = step(1)
    assert calls_all == [2] * n and calls_some == [2] + [1] * (n - 1)  # recomputed only where checkpointed
    assert loss_some == pytest.approx(loss_all, rel=1e-6)
    assert grads_some.keys() == grads_all.keys()
    for name, grad in grads_all.items():
        assert torch.allclose(grads_some[name], grad, rtol=1e-5, atol=1e-7), name


def test_each_batch_trains_with_the_layers_the_plan_gives_its_size(config, workspace, tmp_path):
    """The trainer switches the checkpointed layers per batch as the plan's choice says (here on the
    transformers backend on the CPU, with a choice made by hand: short batches recompute nothing, long
    ones every layer), and counts the batches of each."""
    import torch
    from datasets import Dataset

    from engine.chat.models import resolve_model
    from engine.chat.templates import prepare_tokenizer
    from engine.train import backend
    from engine.train.tokens import tokenize
    from engine.train.trainer import WorkbenchTrainer, training_args

    config = with_changes(config, {"lora.dropout": 0.0, "lora.gradient_checkpointing": "on", "train.batch_size": 1,
                                   "train.gradient_accumulation": 1, "train.max_steps": 8})
    settings = backend.resolve(config, detect())
    model, tokenizer = backend.load(config, settings, resolve_model(config.model.name_or_path, workspace, anywhere=True))
    tokenizer = prepare_tokenizer(tokenizer)
    rows = [{"messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Arr!" * n}]}
            for n in (1, 1, 1, 1, 30, 30, 30, 30)]
    data = tokenize(tokenizer, rows, 512, True)
    short, long = min(data.lengths), max(data.lengths)
    assert long > short
    n = backend.checkpoint_layers(model, settings)  # every layer, as the largest batch needs
    choice = checkpointing.Choice(settings, n, 1, 1, 0.0, 0.0, True, 1, 1, limits=(short,) * n + (long,),
                                  typical_tokens=short, largest_tokens=long)
    trainer = WorkbenchTrainer(model=model, args=training_args(config, settings, tmp_path / "out"),
                               processing_class=tokenizer, train_dataset=Dataset.from_list(data.rows),
                               checkpointing=choice)
    layers = backend.decoder_layers(model)
    calls, steps = [0] * len(layers), []
    for i, layer in enumerate(layers):  # each run of a layer's attention, recomputations too
        forward = layer.self_attn.forward

        def counted(*args, forward=forward, i=i, **kwargs):
            calls[i] += 1
            return forward(*args, **kwargs)

        layer.self_attn.forward = counted
    step = trainer.training_step

    def recorded(model, inputs, num_items_in_batch=None):
        before = list(calls)
        loss = step(model, inputs, num_items_in_batch)
        steps.append((inputs["input_ids"].numel(), [b - a for a, b in zip(before, calls)]))
        return loss

    trainer.training_step = recorded
    trainer.train()
    assert sorted(tokens for tokens, _ in steps) == sorted(data.lengths)
    for tokens, runs_of_each in steps:
        assert runs_of_each == [1 if tokens <= short else 2] * len(layers), tokens
    assert trainer.batches_by_layers == {0: 4, n: 4}
    assert torch.isfinite(torch.tensor(trainer.state.log_history[-1]["train_loss"]))
