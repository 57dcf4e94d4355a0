"""DPO on the CPU: real (non-padding) tokens per second of the app's worker against a plain trl DPO script
with the same settings, on the default model with the pirate catchphrase pairs (examples/pirate_pairs.py).

    app        the app's worker (`python -m engine train RUN_DIR`, method dpo): trl's DPOTrainer with the
               worker's callbacks, the real-token count and, without Triton, engine/train/logprobs.py
    trl-same   trl's DPOTrainer alone, same settings: LoRA r=16 alpha 32 on all attention and MLP layers,
               batch 4, learning rate 5e-5, beta 0.1, max length 256, bf16 autocast where the CPU has it;
               it needs the same log-probability fallback, since trl 1.15's Triton kernel is missing here

Tokens are those of the attention masks (prompt and both replies of each pair). Each setup runs in its
own process; the first step is warm-up and left out; with `--repeat N` the setups alternate and the
median round counts. Writes bench/results/<date>-cpu-dpo.json and prints a table for bench/RESULTS.md.

    .venv/bin/python bench/cpu_dpo.py [--steps 6] [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu_train import MODELS, TARGETS, Clock  # noqa: E402  (after the path is set)

SETUPS = ("app", "trl-same")
SETTINGS = {"method": "dpo", "preference": {"beta": 0.1}, "model": {"name_or_path": "default", "max_seq_length": 256},
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
            "train": {"batch_size": 4, "gradient_accumulation": 1, "learning_rate": 5e-5, "warmup_ratio": 0.0,
                      "save_steps": 1000, "logging_steps": 1}, "probes": {"prompts": []}}


def run_app(steps: int, pairs: Path) -> dict:
    from engine.data.store import import_file
    from engine.default_model import ensure_default_model
    from engine.train import callbacks, runs, worker
    from engine.train.config import validate
    from engine.workspace import Workspace

    clock = Clock()

    class Timed(callbacks.ProgressCallback):  # the worker's own progress callback, plus the clock
        def on_step_begin(self, *a, **k):
            clock.callback.on_step_begin()

        def on_step_end(self, *a, **k):
            clock.callback.on_step_end()

    callbacks.ProgressCallback = Timed
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        model = ensure_default_model(MODELS)
        (ws.models / model.name).symlink_to(model, target_is_directory=True)
        import_file(ws, "pairs", pairs)
        config = validate({**SETTINGS, "dataset": "pairs", "train": {**SETTINGS["train"], "max_steps": steps + 1}})
        run = runs.create_run(ws, config, name="bench")
        worker.main(run.path, ws)
        run = runs.load_run(ws, "bench")
        assert run.state == "completed", run.status
        seen = [0] + [e["tokens"] for e in run.events if e["type"] == "step"]
    return clock.result([b - a for a, b in zip(seen, seen[1:])])


def run_trl(steps: int, pairs: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from engine.chat.templates import prepare_tokenizer
    from engine.default_model import ensure_default_model
    from engine.train import logprobs
    from engine.train.backend import cpu_has_bf16

    logprobs.install()
    path = ensure_default_model(MODELS)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    args = DPOConfig(output_dir=tempfile.mkdtemp(), max_steps=steps + 1, per_device_train_batch_size=4,
                     learning_rate=5e-5, beta=0.1, max_length=256, logging_steps=1, save_strategy="no",
                     report_to=[], use_cpu=True, disable_tqdm=True, seed=3407, bf16=cpu_has_bf16(),
                     gradient_checkpointing=False)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft)
    tokens: list[int] = []
    collate = trainer.data_collator

    def counting(examples):
        batch = collate(examples)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    trainer.data_collator = counting
    clock = Clock()
    trainer.add_callback(clock.callback)
    trainer.train()
    return clock.result(tokens)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run = run_app if args.one == "app" else run_trl
        print("RESULT " + json.dumps(run(args.steps, Path(args.pairs))))
        return

    from bench.machine import describe
    from examples.pirate_pairs import write

    pairs = write(Path(tempfile.mkdtemp()) / "pirate-pairs.jsonl")
    rounds: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for setup in SETUPS:
            load = os.getloadavg()[0]
            done = subprocess.run([sys.executable, __file__, "--one", setup, "--steps", str(args.steps),
                                   "--pairs", str(pairs)], cwd=ROOT, capture_output=True, text=True)
            line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                sys.exit(f"{setup} failed:\n{done.stderr[-3000:]}")
            rounds.setdefault(setup, []).append({**json.loads(line[-1][7:]), "load_before": round(load, 2)})
            print(setup, round(rounds[setup][-1]["tokens_per_s"], 1), "tokens/s, load", round(load, 1), flush=True)
    median = {s: sorted(rs, key=lambda r: r["tokens_per_s"])[(len(rs) - 1) // 2] for s, rs in rounds.items()}
    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "steps": args.steps,
              "median": median, "rounds": rounds}
    out = ROOT / "bench" / "results" / f"{result['date']}-cpu-dpo.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    app, trl = median["app"], median["trl-same"]
    print("\n| setup | real tokens/s | app is | real tokens per CPU-second | app is | peak RSS GB | load before |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for setup, r in median.items():
        print(f"| {setup} | {r['tokens_per_s']:.0f} | {app['tokens_per_s'] / r['tokens_per_s']:.2f}x | "
              f"{r['tokens_per_cpu_s']:.0f} | {app['tokens_per_cpu_s'] / r['tokens_per_cpu_s']:.2f}x | "
              f"{r['peak_rss_gb']:.1f} | {r['load_before']} |")
    print(f"\napp / trl-same: {app['tokens_per_s'] / trl['tokens_per_s']:.2f}x (goal >= 0.95x)")


if __name__ == "__main__":
    main()
