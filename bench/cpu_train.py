"""CPU training benchmark on the default model: real (non-padding) tokens per second, batch 4, LoRA r=16
on all attention and MLP layers, the pirate persona set (variable-length multi-turn chats).

    app        the app's worker (`python -m engine train RUN_DIR`): padding-free, bf16 autocast, the
               plain-torch loss on learned positions only
    trl-same   a plain trl script with the same settings (padding-free, bf16 autocast, assistant-only
               loss); its loss is transformers' own, since trl 1.15's fused Triton loss crashes on CPU
    trl-default trl's defaults (padded batches, gradient checkpointing, bf16, max_length 1024) with the
               same loss fallback, plus use_cpu
    tutorial   the tutorial's recipe: every row padded to 2048 tokens, batch 4

Each runs in its own process; the first step is warm-up and left out. Writes
bench/results/<date>-cpu-train.json and prints a Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/cpu_train.py [--steps 12] [--only app,trl-same]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "examples" / "data" / "pirate.jsonl"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SETUPS = ("app", "trl-same", "trl-default", "tutorial")
STEPS = {"trl-default": 8, "tutorial": 4}  # the slow ones take fewer steps


def run_app(steps: int) -> dict:
    from engine.train import presets, runs, worker
    from engine.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        config = presets.build("quick-test", str(DATA), train={"max_steps": steps + 1, "save_steps": 1000},
                               probes={"prompts": []})
        run = runs.create_run(ws, config, name="bench")
        worker.main(run.path, ws)
        run = runs.load_run(ws, "bench")
        assert run.state == "completed", run.status
        events = [e for e in run.events if e["type"] == "step"]
    rates = [e["tokens_per_s"] for e in events if e["tokens_per_s"]]
    return {"tokens_per_s": statistics.median(rates), "per_step": rates,
            "peak_rss_gb": max(e["peak_memory_gb"] for e in events)}


def run_trl(setup: str, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from engine.default_model import ensure_default_model
    from engine.templates import prepare_tokenizer

    path = ensure_default_model(ROOT / ".cache" / "tests" / "models")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGETS, task_type="CAUSAL_LM")
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=steps + 1, per_device_train_batch_size=4,
                  learning_rate=3e-4, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                  disable_tqdm=True, seed=3407)
    if setup == "trl-same":
        args = SFTConfig(**common, bf16=True, padding_free=True, max_length=None, assistant_only_loss=True,
                         gradient_checkpointing=False)
        dataset = Dataset.from_list(rows)
    elif setup == "trl-default":
        args = SFTConfig(**common)  # bf16, gradient checkpointing, padded, max_length 1024: trl's defaults
        dataset = Dataset.from_list(rows)
    else:  # tutorial: pad every row to 2048, as its tokenisation step does
        args = SFTConfig(**common, bf16=True, gradient_checkpointing=False, max_length=None)
        pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")  # never in the chats, so padding is countable
        encoded = []
        for r in rows:
            enc = tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
            ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
            pad = 2048 - len(ids)
            encoded.append({"input_ids": ids + [pad_id] * pad,
                            "labels": [t if m else -100 for t, m in zip(ids, mask)] + [-100] * pad})
        dataset = Dataset.from_list(encoded)

    class PlainLoss(SFTTrainer):
        """trl 1.15 without Triton: transformers' own loss on the full logits."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    trainer = PlainLoss(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    tokens: list[int] = []
    collate = trainer.data_collator

    def counting(examples):
        batch = collate(examples)
        if setup == "tutorial":
            tokens.append(int((batch["input_ids"] != pad_id).sum()))
        else:
            tokens.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            times.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            times[-1] = time.perf_counter() - times[-1]

    trainer.add_callback(Clock())
    trainer.train()
    rates = [n / t for n, t in zip(tokens[1:], times[1:])]
    return {"tokens_per_s": sum(tokens[1:]) / sum(times[1:]), "per_step": rates,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def one(setup: str, steps: int) -> None:
    result = run_app(steps) if setup == "app" else run_trl(setup, steps)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--only", default=",".join(SETUPS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.steps)

    from bench.machine import describe

    results = {}
    for setup in args.only.split(","):
        steps = min(args.steps, STEPS.get(setup, args.steps))
        load = os.getloadavg()[0]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--one", setup, "--steps", str(steps)], cwd=ROOT,
                              capture_output=True, text=True)
        line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            sys.exit(f"{setup} failed:\n{done.stderr[-3000:]}")
        results[setup] = {**json.loads(line[-1][7:]), "steps": steps, "load_before": round(load, 2),
                          "wall_s": round(time.perf_counter() - started, 1)}
        print(setup, round(results[setup]["tokens_per_s"], 1), "tokens/s", flush=True)

    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "results": results}
    out = ROOT / "bench" / "results" / f"{result['date']}-cpu-train.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    app = results.get("app", {}).get("tokens_per_s")
    print("\n| setup | real tokens/s | app is | peak RSS GB | steps | load before |\n| --- | --- | --- | --- | --- | --- |")
    for setup, r in results.items():
        ratio = f"{app / r['tokens_per_s']:.2f}x" if app else ""
        print(f"| {setup} | {r['tokens_per_s']:.0f} | {ratio} | {r['peak_rss_gb']:.1f} | {r['steps']} | {r['load_before']} |")


if __name__ == "__main__":
    main()
