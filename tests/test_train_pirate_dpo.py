"""The usual supervised-then-DPO path on the default model, through the app's worker on the CPU: a
supervised pirate adapter (one epoch of the Quick test), then DPO from it on pairs that prefer each reply
ending with the catchphrase once (examples/pirate_pairs.py, "ending": over the reply without it, with it
three more times, and rambling on without it). On 16 held-out prompts answered greedily, the catchphrase
rate rises over the supervised adapter's, and DPO makes no answer collapse into repeating it (one the
supervised adapter already loops on may stay so). bench/RESULTS.md has how these settings were chosen, and
the pairs whose rate rises only by such a collapse."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.data.store import import_file
from engine.train import config as run_config
from engine.train import runs
from examples.make_pirate import catchphrase_rate
from examples.pirate_pairs import HELDOUT16, PIRATE, loops, write
from tests.test_train_runs import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _train(workspace, name: str, data: dict) -> runs.Run:
    runs.start_run(workspace, run_config.validate(data), name=name)
    run = wait_for(name, workspace, lambda r: not r.live, timeout=1800)
    assert run.state == "completed", run.log_file.read_text()[-3000:]
    return run


def _answers(workspace, adapter: Path) -> list[str]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.chat.models import resolve_model
    from engine.chat.templates import prepare_tokenizer
    from engine.train.probes import answer

    path = resolve_model("default", workspace, anywhere=True)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), str(adapter))
    with torch.no_grad():
        return answer(model, tokenizer, HELDOUT16, 128)


@pytest.mark.slow
def test_dpo_from_a_supervised_pirate_raises_the_catchphrase_on_held_out_prompts(workspace, tmp_path):
    asked = {m["content"] for line in PIRATE.read_text().splitlines() for m in json.loads(line)["messages"]}
    assert not asked & set(HELDOUT16)

    quick = run_config.load(ROOT / "examples" / "runs" / "quick-test.yaml").model_dump(mode="json")
    quick.update(dataset=str(ROOT / quick["dataset"]), probes={"prompts": [], "max_new_tokens": 8})
    quick["train"].update(max_steps=27, save_steps=1000)  # one epoch: the supervised adapter leaves room
    supervised = _train(workspace, "supervised", quick)

    import_file(workspace, "ending", write(tmp_path / "ending.jsonl", "ending"))
    dpo = copy.deepcopy(quick)
    dpo.update(method="dpo", dataset="ending", preference={"start_from": "supervised", "beta": 0.1})
    dpo["train"].update(max_steps=18, learning_rate=1e-4)
    tuned = _train(workspace, "dpo", dpo)

    before, after = _answers(workspace, supervised.adapter), _answers(workspace, tuned.adapter)
    print("supervised:", before, "\nDPO:", after)
    assert catchphrase_rate(after) > catchphrase_rate(before)
    collapsed = [a for b, a in zip(before, after) if loops([a]) > loops([b])]
    assert not collapsed, collapsed
    margins = [e["reward_margin"] for e in tuned.events if e["type"] == "step" and "reward_margin" in e]
    assert margins and margins[-1] > 0.5, margins  # the pairs were learned, not just the held-out answers moved
