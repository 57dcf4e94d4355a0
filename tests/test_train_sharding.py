"""DDP or FSDP for a run of several processes: the plan's choice, its per-GPU memory, and the trainer's
FSDP arguments as the installed transformers reads them.

No multi-GPU machine exists here (nor was one lent), so GPUs are described (a Hardware of a chosen
memory, and `visible_gpus` for the plan's process count); nothing trains with FSDP in these tests. On
a CPU, accelerate 1.15 trains several processes with DDP even when FSDP is asked for, so a CPU run
could not show FSDP either (docs/training.md, "Several GPUs and machines").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.hardware import GiB, Hardware
from engine.train import distributed, plan
from engine.train.backend import Settings, choose
from engine.train.config import ConfigError, validate, with_changes
from tests.model_shapes import config_only, write_data

GPU = Settings("cuda", "transformers", "bfloat16", "bf16", "paged_adamw_8bit", True)


@dataclasses.dataclass(frozen=True)
class Card(Hardware):
    """A GPU machine of a chosen free memory a card: described, none is here."""

    free: int = 0

    def free_bytes(self) -> int:
        return self.free


def card(gib: float, backend: str = "transformers") -> Card:
    return Card("cuda", "test GPU", True, int(gib * GiB), backend, True, free=int(gib * GiB))


@pytest.fixture(scope="module")
def seventy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    path = config_only("llama-3.1-70b", folder)
    from transformers import AutoConfig

    return path, plan.shape_of(AutoConfig.from_pretrained(path))


def _config(path: Path, four_bit: bool, **train):
    return validate({"model": {"name_or_path": str(path), "load_in_4bit": four_bit, "max_seq_length": 2048},
                     "dataset": "rows.jsonl", "train": {"batch_size": 2, **train}})


@pytest.mark.parametrize("four_bit, gib, count, strategy, starts", [
    (True, 24, 2, "fsdp", False), (True, 24, 4, "fsdp", False),  # loads whole 4-bit weights (37.7 GiB) on each
    (True, 139, 2, "ddp", True), (True, 139, 4, "ddp", True),  # a 4-bit copy fits each card
    (False, 24, 2, "fsdp", False), (False, 24, 4, "fsdp", False),  # 141 GB of 16-bit weights: over 24 GiB a card
    (False, 139, 2, "fsdp", True), (False, 139, 4, "fsdp", True),  # a copy does not fit one card; split it does
])
def test_a_70b_shape_takes_ddp_where_a_copy_fits_fsdp_where_it_does_not(seventy, four_bit, gib, count, strategy,
                                                                        starts):
    path, shape = seventy
    config = _config(path, four_bit)
    chosen = plan.sharding(config, GPU, shape, count, gib * GiB)
    assert chosen.strategy == strategy and (chosen.problem is None) == starts, chosen
    assert chosen.shards == (count if strategy == "fsdp" else 1)
    if strategy == "ddp":
        assert chosen.words.startswith("DDP: a whole copy") and f"{gib:.1f} GiB" in chosen.words
    else:
        assert chosen.words.startswith("FSDP: a whole copy needs about") and f"split across {count} GPUs" in chosen.words
    if not starts:
        assert chosen.problem.startswith(f"train.sharding: the model does not fit these {count} GPUs either way")
        assert ("loads whole onto each GPU" in chosen.problem) == four_bit


def test_fsdp_splits_the_weights_and_adapter_and_gathers_two_layers(seventy):
    path, shape = seventy
    config = _config(path, False)
    tokens = 2 * 2048
    whole = plan.estimate_memory(shape, config, GPU, tokens)
    two, four = (plan.estimate_memory(shape, config, GPU, tokens, n) for n in (2, 4))
    embedding = shape.embedding_parameters * 2
    layers = whole.weights - embedding
    for n, split in ((2, two), (4, four)):
        # each GPU: its share of the decoder layers, two whole layers gathered, the embeddings and LM head whole
        assert split.weights == pytest.approx(layers / n + 2 * layers / 80 + embedding)
        assert split.adapter == pytest.approx(whole.adapter / n)
        assert (split.activations, split.logits, split.runtime) == (whole.activations, whole.logits, whole.runtime)
    assert four.total < two.total < whole.total
    four_bit = _config(path, True)
    split = plan.estimate_memory(shape, four_bit, GPU, tokens, 4)
    # a 4-bit model is quantized whole on each GPU before FSDP splits it: that is its peak
    assert split.total == pytest.approx(plan.estimate_memory(shape, four_bit, GPU, tokens).weights + split.runtime)


def test_the_persons_choice_is_kept_and_says_so(seventy):
    path, shape = seventy
    ddp = plan.sharding(_config(path, False, sharding="ddp"), GPU, shape, 2, 139 * GiB)
    assert ddp.strategy == "ddp" and ddp.problem is None and "DDP (your setting)" in ddp.words
    assert "FSDP across 2 would need about" in ddp.words  # the person sees what FSDP would take
    fsdp = plan.sharding(_config(path, True, sharding="fsdp"), GPU, shape, 2, 139 * GiB)
    assert fsdp.strategy == "fsdp" and fsdp.shards == 2 and "FSDP (your setting)" in fsdp.words


def test_fsdp_for_unsloth_and_for_preference_runs_is_refused_with_the_reason(seventy):
    path, shape = seventy
    unsloth = dataclasses.replace(GPU, backend="unsloth")
    auto = plan.sharding(_config(path, False), unsloth, shape, 2, 139 * GiB)
    assert auto.strategy == "fsdp" and "set train.sharding to 'fsdp'" in auto.problem
    assert plan.sharding(_config(path, False, sharding="fsdp"), unsloth, shape, 2, 139 * GiB).problem is None
    dpo = validate({**_config(path, False).model_dump(mode="json"), "method": "dpo"})
    assert "FSDP trains supervised runs only; a DPO run" in plan.sharding(dpo, GPU, shape, 2, 139 * GiB).problem


def test_fsdp_cannot_start_on_a_cpu(tiny_model_path):
    cpu = Hardware("cpu", "CPU", False, 8 * GiB, "transformers", False)
    config = validate({"model": {"name_or_path": str(tiny_model_path)}, "dataset": "d.jsonl",
                       "train": {"processes": 2, "sharding": "fsdp"}})
    _, problems = choose(config, cpu)
    assert problems == ["train.sharding: FSDP splits the model across NVIDIA GPUs, and this machine has CPU, where "
                        "several processes train with DDP. Choose 'auto' or 'ddp'."]
    assert choose(with_changes(config, {"train.sharding": "auto"}), cpu)[1] == []
    assert choose(with_changes(config, {"train.processes": 1}), cpu)[1] == []  # one process ignores it


def test_sharding_is_a_checked_setting():
    assert validate({"dataset": "d.jsonl"}).train.sharding == "auto"
    with pytest.raises(ConfigError) as e:
        validate({"dataset": "d.jsonl", "train": {"sharding": "zero3"}})
    assert "'train.sharding'" in str(e.value) and "'auto', 'ddp' or 'fsdp'" in str(e.value)


def test_the_plan_of_a_70b_run_on_two_large_cards_shards_it_and_says_why(seventy, tmp_path, workspace, monkeypatch):
    """plan.make with two described H200-sized cards (no GPU here: `visible_gpus` is the stand-in)."""
    path, _ = seventy
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 2)
    config = with_changes(_config(path, False), {"dataset": str(write_data("variable", tmp_path / "rows.jsonl", n=40))})
    made = plan.make(config, workspace, card(139))
    assert made.processes == 2 and made.sharding.strategy == "fsdp" and made.settings.sharded
    assert made.problems == [] and made.verdict == "fits"  # the memory line is one GPU's share
    summary = str(made.summary())
    assert "**Processes:** 2 (torchrun, FSDP), the model split across their GPUs" in summary
    assert "FSDP: a whole copy needs about" in summary

    forced = plan.make(with_changes(config, {"train.sharding": "ddp"}), workspace, card(139))
    assert forced.sharding.strategy == "ddp" and forced.verdict == "will not fit"
    split = next(f for f in forced.fixes if f.changes == {"train.sharding": "fsdp"})
    assert split.label.startswith("Split the model across the 2 GPUs (FSDP)")
    assert split.memory_gb * 1e9 < forced.memory.total

    one = plan.make(with_changes(config, {"train.processes": 1}), workspace, card(139))
    assert one.sharding is None and not one.settings.sharded and "Processes" not in str(one.summary())


def test_the_trainer_gets_accelerates_fsdp2_arguments(tmp_path):
    """The installed transformers turns them into accelerate's FSDP plugin (read here, not run)."""
    from engine.train.trainer import training_args

    config = validate({"dataset": "d.jsonl", "train": {"processes": 2}})
    cpu = Settings("cpu", "transformers", "float32", "no", "adamw_torch", False)
    assert not training_args(config, cpu, tmp_path).fsdp  # DDP: no FSDP arguments at all
    args = training_args(config, dataclasses.replace(cpu, sharded=True), tmp_path)
    assert args.fsdp is True
    assert args.fsdp_plugin_args == {
        "fsdp_version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "cpu_ram_efficient_loading": True,
        "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True}


def test_under_fsdp_every_process_generates_the_probes_and_rank_0_alone_records(tiny_model_path, tmp_path,
                                                                              monkeypatch):
    """A sharded model's forward is collective, so a follower that skipped the probes would leave rank 0
    waiting: with the real tiny model on one process, a follower's callback generates and writes nothing,
    rank 0's records step 0 when training begins, and a DDP follower does nothing."""
    from transformers import AutoModelForCausalLM, TrainerState

    from engine.chat.templates import load_tokenizer
    from engine.train import probes
    from engine.train.callbacks import ProbeCallback
    from engine.train.runs import EventLog

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model_path), load_tokenizer(tiny_model_path, None)
    generated = []
    answer = probes.answer
    monkeypatch.setattr(probes, "answer", lambda *a: generated.append(1) or answer(*a))
    follower, rank0 = TrainerState(is_world_process_zero=False), TrainerState(is_world_process_zero=True)
    events = EventLog(tmp_path)
    for sharded, state in ((True, follower), (False, follower), (True, rank0)):
        callback = ProbeCallback(tmp_path, ["Hi"], 4, events, sharded)
        callback.on_train_begin(None, state, None, model=model, processing_class=tokenizer)
    assert len(generated) == 2  # the FSDP follower and rank 0; not the DDP follower
    assert probes.recorded_steps(tmp_path) == {0}
    assert [e["text"] for e in events.read()] == ["The probe prompts were answered by the untrained model (step 0)."]
