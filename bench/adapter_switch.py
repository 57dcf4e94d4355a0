"""Switching the chat between the base model and a run's adapter on the default model: the first
switch (the adapter read from disk and attached to the loaded base), later switches, a second
adapter (a checkpoint), and the first token after each switch, against reloading the base model.
Target: a switch under 1 s. Writes bench/results/<date>-adapter-switch.json.

    .venv/bin/python bench/adapter_switch.py [--rounds 5]

The adapter is made with peft at the quick-test preset's size (r=16, alpha=32, every linear layer)
with random weights: the time to attach and switch depends on its size, not on what it learned.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.machine import describe  # noqa: E402
from engine.compare import sides  # noqa: E402
from engine.files import write_json, write_text  # noqa: E402
from engine.chat.models import ModelManager  # noqa: E402
from engine.chat.sampling import preset  # noqa: E402
from engine.train.config import LINEAR_MODULES, validate  # noqa: E402
from engine.train.runs import now  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def make_run(ws: Workspace, model_path: Path, name: str, folders: list[str]) -> None:
    """A run folder with adapters of the quick-test preset's size in each of `folders`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path),
                           LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LINEAR_MODULES))
    generator = torch.Generator().manual_seed(0)
    run = ws.runs / name
    for folder in folders:
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "lora_B" in param_name:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
        model.save_pretrained(run / folder)
    config = validate({"model": {"name_or_path": "default"}, "dataset": str(ROOT / "examples/data/pirate.jsonl"),
                       "lora": {"r": 16, "alpha": 32}})
    write_text(run / "run.yaml", config.to_yaml())
    write_json(run / "status.json", {"state": "completed", "created": now()})


def switch(manager: ModelManager, ws: Workspace, spec: str) -> tuple[float, str | None]:
    """What the Chat tab does when the person picks a side: find it, attach its adapter if needed."""
    started = time.perf_counter()
    name = sides.activate(manager, sides.parse(ws, spec))
    return time.perf_counter() - started, name


def first_token(manager: ModelManager, adapter: str | None) -> float:
    sampling = preset("Precise").model_copy(update={"max_new_tokens": 1})
    return manager.generate(PROMPT, sampling, adapter=adapter).stats.first_token_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        manager = ModelManager(ws)
        manager.load("default")  # converts the packaged model once
        started = time.perf_counter()
        loaded = manager.load("default")  # what reloading the base would cost, for comparison
        load_s = time.perf_counter() - started
        make_run(ws, loaded.path, "bench", ["adapter", "checkpoints/checkpoint-20"])
        base_params, summary = loaded.parameters, loaded.summary()
        first_token(manager, None)  # warm-up
        base_first_token = statistics.median(first_token(manager, None) for _ in range(3))

        first_attach_s, name = switch(manager, ws, "bench")
        first_token_after_attach = first_token(manager, name)
        second_attach_s, checkpoint = switch(manager, ws, "bench:checkpoint-20")
        lora_params = sum(p.numel() for n, p in loaded.model.named_parameters() if "lora_" in n)
        base_after = sum(p.numel() for n, p in loaded.model.named_parameters() if "lora_" not in n)

        rounds = []
        for _ in range(args.rounds):
            for spec in ("bench", sides.BASE, "bench:checkpoint-20", sides.BASE):
                took, adapter = switch(manager, ws, spec)
                rounds.append({"to": spec, "switch_s": took, "first_token_s": first_token(manager, adapter)})

    switches = [r["switch_s"] for r in rounds]
    after = {side: [r["first_token_s"] for r in rounds if (r["to"] == sides.BASE) == (side == "base")]
             for side in ("base", "adapter")}
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": describe(),
        "threads": torch.get_num_threads(),
        "model": summary,
        "adapter": "r=16, alpha=32, all linear layers (the quick-test preset's size)",
        "base_reload_s": round(load_s, 3),
        "first_switch_to_adapter_s": round(first_attach_s, 3),
        "first_switch_to_checkpoint_s": round(second_attach_s, 3),
        "later_switch_s_median": round(statistics.median(switches), 5),
        "later_switch_s_max": round(max(switches), 5),
        "first_token_s_base_median": round(base_first_token, 3),
        "first_token_s_after_first_switch": round(first_token_after_attach, 3),
        "first_token_s_after_switch_to_base_median": round(statistics.median(after["base"]), 3),
        "first_token_s_after_switch_to_adapter_median": round(statistics.median(after["adapter"]), 3),
        "lora_parameters_per_adapter": lora_params // 2,
        "adapter_memory_mb": round(lora_params // 2 * 4 / 2**20, 1),  # float32, like the loaded base
        "base_parameters_unchanged": base_after == base_params,
        "target_s": 1.0,
        "rounds": rounds,
    }
    result["within_target"] = max(first_attach_s, second_attach_s, max(switches)) < result["target_s"]
    out = ROOT / "bench" / "results" / f"{result['date']}-adapter-switch.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
