"""Run configs, presets and the example config: what a person types or picks is validated, and every
mistake is reported as a sentence naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.train import config as run_config
from engine.train import presets
from engine.train.config import ConfigError, RunConfig, advice, validate, with_changes

ROOT = Path(__file__).resolve().parent.parent


def error_of(data) -> str:
    with pytest.raises(ConfigError) as e:
        validate(data)
    return str(e.value)


def test_errors_name_each_wrong_field_in_a_sentence():
    message = error_of({"dataset": "d.jsonl", "train": {"learning_rate": -1, "lerning_rate": 2e-4},
                        "lora": {"r": "big"}})
    lines = message.splitlines()
    assert len(lines) == 3
    assert any(l.startswith("'train.learning_rate' should be greater than 0") and "-1" in l for l in lines)
    assert any(l.startswith("'train.lerning_rate' is not a setting") for l in lines)
    assert any(l.startswith("'lora.r' should be a valid integer") for l in lines)
    assert "Traceback" not in message and "pydantic" not in message


def test_missing_dataset_and_impossible_combinations_are_explained():
    assert error_of({}).startswith("'dataset' is missing.")
    assert "lora.loftq" in error_of({"dataset": "d", "model": {"load_in_4bit": True}, "lora": {"loftq": True}})
    assert "'train.batching'" in error_of({"dataset": "d", "train": {"batching": "pad_to_max"}})
    assert "must be a mapping" in error_of(["not", "a", "mapping"])


def test_defaults_follow_the_tutorial_and_round_trip_through_yaml():
    config = validate({"dataset": "d.jsonl"})
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert config.train.assistant_only_loss and config.train.batching == "padding_free"
    assert validate(yaml.safe_load(config.to_yaml())) == config


def test_with_changes_revalidates():
    config = validate({"dataset": "d.jsonl"})
    changed = with_changes(config, {"train.batch_size": 1, "model.max_seq_length": 256})
    assert (changed.train.batch_size, changed.model.max_seq_length) == (1, 256)
    with pytest.raises(ConfigError, match="train.batch_size"):
        with_changes(config, {"train.batch_size": 0})


def test_every_setting_carries_advice():
    def paths(model, prefix=""):
        for name, f in model.model_fields.items():
            sub = f.annotation
            if isinstance(sub, type) and issubclass(sub, run_config.BaseModel):
                yield from paths(sub, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [p for p in paths(RunConfig) if not advice(p)]
    assert missing == []
    assert "8-16" in advice("lora.r") and "r or 2r" in advice("lora.alpha") and "3" in advice("train.epochs")


@pytest.mark.parametrize("name", ["quick-test", "tutorial", "roleplay"])
def test_presets_build_valid_configs(name):
    preset = presets.presets()[name]
    config = presets.build(name, "data.jsonl", model="default", train={"seed": 1})
    assert config.preset == name and config.dataset == "data.jsonl" and config.train.seed == 1
    assert preset.title and len(preset.summary) > 40


def test_preset_values_are_the_ones_promised():
    tutorial = presets.build("tutorial", "d")
    assert (tutorial.lora.r, tutorial.lora.alpha, tutorial.lora.dropout) == (16, 16, 0.05)
    assert (tutorial.train.learning_rate, tutorial.train.batch_size, tutorial.train.scheduler) == (2e-5, 16, "cosine")
    assert (tutorial.train.epochs, tutorial.train.warmup_ratio, tutorial.train.save_steps) == (3, 0.03, 500)
    roleplay = presets.build("roleplay", "d")
    assert 0.05 <= roleplay.lora.dropout <= 0.1 and roleplay.train.epochs > tutorial.train.epochs
    with pytest.raises(ConfigError, match="no preset 'fast'"):
        presets.build("fast", "d")


def test_the_example_config_runs_from_a_fresh_clone():
    config = run_config.load(ROOT / "examples" / "runs" / "quick-test.yaml")
    assert config.preset == "quick-test" and config.model.name_or_path == "default"
    assert (ROOT / config.dataset).is_file()  # relative to the repository root
    assert config == presets.build("quick-test", config.dataset, probes=config.probes.model_dump())
