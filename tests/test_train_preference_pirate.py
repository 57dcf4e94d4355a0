"""The usual path on the default model in real workers on the CPU: a short supervised run on the pirate
persona set, then DPO from its adapter on pairs that prefer the reply ending with the persona's
catchphrase over the same reply without it. The catchphrase shows on more held-out prompts after DPO
than with the supervised adapter it started from (its step-0 probe answers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.store import import_file
from engine.train import runs
from engine.train.config import validate
from examples.make_pirate import catchphrase_rate
from examples.pirate_pairs import write
from tests.test_train_preference import wait_for

ROOT = Path(__file__).resolve().parent.parent
PIRATE = ROOT / "examples" / "data" / "pirate.jsonl"
HELD_OUT = [p for p in (ROOT / "examples" / "data" / "pirate_heldout.txt").read_text().split("\n") if p]


def settings(dataset: str, **changes) -> dict:
    return {
        "model": {"name_or_path": "default", "max_seq_length": 256}, "dataset": dataset,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "train": {"batch_size": 4, "gradient_accumulation": 1, "save_steps": 1000, "logging_steps": 1,
                  "warmup_ratio": 0.0},
        **changes,
    }


@pytest.mark.slow
def test_dpo_after_a_supervised_run_raises_the_catchphrase_rate(workspace, tmp_path):
    import_file(workspace, "pirate-pairs", write(tmp_path / "pairs.jsonl"))
    sft = settings(str(PIRATE), probes={"prompts": []})
    sft["train"] |= {"max_steps": 20, "learning_rate": 3e-4}
    runs.start_run(workspace, validate(sft), name="sft")
    assert wait_for("sft", workspace, ended := (lambda r: not r.live), timeout=1200).state == "completed"

    dpo = settings("pirate-pairs", method="dpo", preference={"start_from": "sft", "beta": 0.1},
                   probes={"prompts": HELD_OUT, "max_new_tokens": 64})
    # Above the usual DPO learning rate, so a few CPU minutes show the change; the probes answer at the end.
    dpo["train"] |= {"max_steps": 20, "save_steps": 20, "learning_rate": 2e-4}
    runs.start_run(workspace, validate(dpo), name="dpo")
    run = wait_for("dpo", workspace, ended, timeout=1200)
    assert run.state == "completed", run.status

    by_step = {p["step"]: p["answers"] for p in run.probes}
    supervised, preferred = by_step[0], by_step[max(by_step)]
    print("supervised:", supervised, "\nafter DPO:", preferred)
    print("rates:", catchphrase_rate(supervised), catchphrase_rate(preferred))
    assert catchphrase_rate(preferred) > catchphrase_rate(supervised)
    margins = [e["reward_margin"] for e in run.events if e["type"] == "step"]
    assert sum(margins[-4:]) / 4 > sum(margins[:4]) / 4
