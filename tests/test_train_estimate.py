"""The plan's time before any measuring: from this workspace's earlier runs on this device (the same
model first, another model's scaled by size), else an estimate that says it is one and what it assumes;
and the Quick test's help with its measured time."""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

import pytest

from engine.hardware import detect
from engine.train import estimate, plan, presets
from engine.train.config import validate
from engine.train.runs import list_runs, load_run, update_status
from tests.compare_runs import PIRATE, trained_run


@pytest.fixture(scope="module")
def trained(new_workspace, tiny_model_path):
    """A workspace with one real run of the tiny model (batch 4), and no measured speeds."""
    ws = new_workspace("estimate")
    trained_run(ws, "tiny", tiny_model_path)
    (ws.runs / plan.SPEED_FILE).unlink()  # the worker's record of that run's exact settings
    return ws


def config_of(model, batch_size=2):
    return validate({"model": {"name_or_path": str(model), "max_seq_length": 128}, "dataset": str(PIRATE),
                     "lora": {"r": 8, "alpha": 16}, "train": {"max_steps": 20, "batch_size": batch_size},
                     "probes": {"prompts": []}})


def median_rate(ws, name):
    return statistics.median(e["tokens_per_s"] for e in load_run(ws, name).current("step") if e.get("tokens_per_s"))


def test_with_no_earlier_run_the_plan_states_an_estimate(workspace, tiny_model_path, default_model_path):
    tiny = plan.make(config_of(tiny_model_path), workspace, detect())
    assert not tiny.speed_measured and tiny.seconds > 0 and tiny.tokens_per_s > 0
    text = tiny.summary()
    assert "**Time:** about" in text and "an estimate" in text and "it assumes the speed of" in text
    assert "Measure speed" in text
    default = plan.make(config_of(default_model_path), workspace, detect())
    assert default.tokens_per_s < tiny.tokens_per_s  # the larger model trains fewer tokens a second
    assert default.seconds > tiny.seconds


def test_an_earlier_run_of_the_same_model_times_the_plan(trained, tiny_model_path):
    p = plan.make(config_of(tiny_model_path), trained, detect())  # batch 2 where the run had 4
    assert p.speed_measured and p.tokens_per_s == pytest.approx(median_rate(trained, "tiny"))
    assert p.speed_source == "from run tiny: the same model on this machine, batch 4 padding-free"
    assert f"tokens/s ({p.speed_source})" in p.summary()
    same = plan.make(config_of(tiny_model_path, batch_size=4), trained, detect())
    assert same.speed_source == "from run tiny: the same model on this machine"


def test_another_models_run_is_scaled_by_the_two_models_sizes(trained, default_model_path, tiny_model_path):
    p = plan.make(config_of(default_model_path), trained, detect())
    sizes = [plan.tokenizer_and_shape(config_of(m), trained)[1].parameters for m in (tiny_model_path, default_model_path)]
    assert p.speed_measured and "scaled by the two models' sizes" in p.speed_source and "run tiny" in p.speed_source
    assert p.tokens_per_s == pytest.approx(median_rate(trained, "tiny") * sizes[0] / sizes[1])


def test_a_measured_speed_wins_and_a_run_on_another_device_is_not_used(trained, workspace, tiny_model_path):
    config = config_of(tiny_model_path)
    settings, _ = plan.choose(config, detect())
    plan.record_speed(trained, config, settings, 1234.0, 2.0, "a few measured steps")
    try:
        p = plan.make(config, trained, detect())
        assert (p.tokens_per_s, p.speed_source, p.measured_peak_gb) == (1234.0, "from a few measured steps", 2.0)
    finally:
        (trained.runs / plan.SPEED_FILE).unlink()
    # The same run, as if it had trained on a GPU, is the only run of a fresh workspace: a CPU plan assumes.
    shutil.copytree(trained.runs / "tiny", workspace.runs / "on-a-gpu")
    update_status(workspace.runs / "on-a-gpu", backend={"device": "cuda", "backend": "unsloth"})
    assert [r.name for r in list_runs(workspace)] == ["on-a-gpu"]
    assert not plan.make(config, workspace, detect()).speed_measured


def test_the_quick_test_help_gives_its_measured_time():
    measured = estimate.timing()["presets"]["quick-test"]
    help = estimate.preset_help("quick-test")
    assert help.startswith(presets.presets()["quick-test"].summary) and help.endswith(measured)
    assert "bench/RESULTS.md" in measured and "2-core" in measured
    assert estimate.preset_help("tutorial") == presets.presets()["tutorial"].summary  # nothing measured for it


def test_timing_figures_are_those_of_bench_results():
    results = (Path(__file__).parent.parent / "bench" / "RESULTS.md").read_text()
    for ref in estimate.timing()["assumed"].values():
        assert f"{ref['tokens_per_s']:,}" in results or f"**{ref['tokens_per_s']}**" in results, ref
