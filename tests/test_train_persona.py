"""The default model, trained with the example Quick test config on the pirate persona set in a real
worker on the CPU, takes the persona's voice on prompts it never saw, while the loss falls."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.train import config as run_config
from engine.train import runs
from examples.make_pirate import catchphrase_rate, voice_rate
from tests.test_train_runs import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _busiest() -> list[tuple[float, str]]:
    """What else took the CPU: a quiet machine runs this test in a few minutes."""
    import psutil

    procs = [(sum(p.info["cpu_times"][:2]), " ".join(p.info["cmdline"] or [])[:160])
             for p in psutil.process_iter(["cpu_times", "cmdline"]) if p.info["cpu_times"]]
    return sorted(procs, reverse=True)[:6]


@pytest.mark.slow
def test_the_persona_shows_on_held_out_prompts(workspace):
    config = run_config.load(ROOT / "examples" / "runs" / "quick-test.yaml")
    held_out = (ROOT / "examples" / "data" / "pirate_heldout.txt").read_text().split("\n")
    config = config.model_copy(update={
        "dataset": str(ROOT / config.dataset),
        "probes": config.probes.model_copy(update={"prompts": [p for p in held_out if p], "max_new_tokens": 80}),
    })
    runs.start_run(workspace, config, name="pirate")
    try:
        run = wait_for("pirate", workspace, lambda r: not r.live, timeout=1200)
    except AssertionError as e:
        raise AssertionError(f"{e}\nthe busiest processes (CPU seconds, command): {_busiest()}") from None
    assert run.state == "completed", run.status

    by_step = {p["step"]: p["answers"] for p in run.probes}
    base, tuned = by_step[0], by_step[max(by_step)]
    print("base:", base, "\ntuned:", tuned)
    assert catchphrase_rate(base) == 0 and voice_rate(base) <= 0.25
    assert catchphrase_rate(tuned) >= 0.25 and voice_rate(tuned) >= 0.75

    losses = [e["loss"] for e in run.events if e["type"] == "step"]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)
