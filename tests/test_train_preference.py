"""Preference tuning (DPO, ORPO, KTO) through the real worker subprocess on the tiny model, from a saved
preference data set, from a supervised run's adapter, and from blind Compare votes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.data.store import import_file
from engine.train import pairs, runs
from engine.train.config import ConfigError, validate

PROMPTS = ["Who are you?"]


def wait_for(name, workspace, predicate, timeout=180.0) -> runs.Run:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = runs.load_run(workspace, name)
        if predicate(run):
            return run
        time.sleep(0.2)
    run = runs.load_run(workspace, name)
    raise AssertionError(f"timed out; state {run.state}, status {run.status}, log:\n{run.log_file.read_text()[-3000:]}")


def ended(run: runs.Run) -> bool:
    return not run.live


def steps_of(run: runs.Run) -> list[dict]:
    return [e for e in run.events if e["type"] == "step"]


@pytest.fixture
def pairs_set(workspace, tmp_path) -> str:
    """Twelve pairs preferring the reply that ends with the catchphrase, imported as a saved data set."""
    rows = [{"prompt": f"Question number {i}?", "chosen": f"Answer {i}. Arr, matey!", "rejected": f"Answer {i}."}
            for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(workspace, "pairs", path)
    return "pairs"


def config(tiny_model_path: Path, dataset: str, method: str, **sections) -> dict:
    return {
        "model": {"name_or_path": str(tiny_model_path), "max_seq_length": 64},
        "dataset": dataset, "method": method,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"max_steps": 4, "batch_size": 4, "gradient_accumulation": 1, "learning_rate": 5e-3,
                  "save_steps": 2, "logging_steps": 1, **sections.pop("train", {})},
        "probes": {"prompts": PROMPTS, "max_new_tokens": 4},
        **sections,
    }


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_each_method_trains_through_the_worker_and_logs_its_rewards(workspace, tiny_model_path, pairs_set, method):
    from peft import PeftConfig

    run = runs.start_run(workspace, validate(config(tiny_model_path, pairs_set, method)), name=method)
    run = wait_for(method, workspace, ended)
    assert run.state == "completed", (run.status, run.log_file.read_text()[-3000:])
    steps = steps_of(run)
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(e["tokens_per_s"] for e in steps[1:]) and steps[-1]["tokens"] > 0
    assert {"reward_margin"} <= steps[-1].keys()
    if method != "kto":  # trl's KTO logs no accuracy: it has no pairs to rank
        assert 0.0 <= steps[-1]["reward_accuracy"] <= 1.0
    # The pairs were learned: the chosen reply's reward moved above the rejected one's.
    assert steps[-1]["reward_margin"] > steps[0]["reward_margin"]
    assert [c.name for c in run.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    # Only the trained adapter is saved, not the reference copy DPO and KTO keep during training.
    assert PeftConfig.from_pretrained(run.adapter).r == 8 and not (run.adapter / "ref").exists()
    texts = " ".join(e.get("text", "") for e in run.events)
    assert f"{method.upper()} on " in texts and "from data set pairs" in texts


def test_dpo_continues_a_supervised_adapter_and_resumes_after_stop(workspace, tiny_model_path, pairs_set):
    import torch
    from safetensors.torch import load_file

    sft = validate(config(tiny_model_path, pairs_set, "supervised", lora={"r": 4, "alpha": 8, "dropout": 0.0}))
    runs.start_run(workspace, sft, name="sft")
    assert wait_for("sft", workspace, ended).state == "completed"

    dpo = config(tiny_model_path, pairs_set, "dpo", preference={"start_from": "sft", "beta": 0.2},
                 train={"max_steps": 400, "save_steps": 2})
    runs.start_run(workspace, validate(dpo), name="dpo")
    wait_for("dpo", workspace, lambda r: len(steps_of(r)) >= 3 or ended(r))
    runs.stop_run(workspace, "dpo")
    run = wait_for("dpo", workspace, ended)
    assert run.state == "stopped", run.status
    stopped_at = steps_of(run)[-1]["step"]
    assert run.latest_checkpoint.name == f"checkpoint-{stopped_at}"

    run.path.joinpath("run.yaml").write_text(validate({**dpo, "train": {**dpo["train"], "max_steps": stopped_at + 2}})
                                             .to_yaml())
    runs.resume_run(workspace, "dpo")
    run = wait_for("dpo", workspace, ended)
    assert run.state == "completed", run.status
    assert any(f"Resuming from checkpoint-{stopped_at}" in e.get("text", "") for e in run.events)
    assert [e["step"] for e in run.current("step")][-1] == stopped_at + 2
    # It trained the supervised adapter further (its rank, 4), so the result applies to the base alone.
    sft_weights = load_file(runs.load_run(workspace, "sft").adapter / "adapter_model.safetensors")
    dpo_weights = load_file(run.adapter / "adapter_model.safetensors")
    assert sft_weights.keys() == dpo_weights.keys()
    assert any(not torch.equal(sft_weights[k], dpo_weights[k]) for k in sft_weights)
    assert any("Continuing the adapter of run sft" in e.get("text", "") for e in run.events)


def test_a_preference_run_needs_pairs_and_a_finished_run_to_start_from(workspace, tiny_model_path, pairs_set):
    run = runs.start_run(workspace, validate(config(tiny_model_path, pairs_set, "dpo",
                                                    preference={"start_from": "nowhere"})), name="bad")
    run = wait_for("bad", workspace, ended)
    assert run.state == "failed" and "There is no run named 'nowhere'" in run.status.error
    with pytest.raises(ConfigError, match="preference methods"):
        validate(config(tiny_model_path, pairs_set, "supervised", preference={"votes_from": ["x"]}))
