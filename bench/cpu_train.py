"""CPU training benchmark on the default model: real (non-padding) tokens per second, batch 4, LoRA r=16
on all attention and MLP layers, the pirate persona set (variable-length multi-turn chats).

    app        the app's worker (`python -m engine train RUN_DIR`): padding-free, bf16 autocast, the
               plain-torch loss on learned positions only
    app-model-loss the same worker with transformers' own loss on the full logits (`Trainer.compute_loss`),
               plus the token accuracy from those logits: the library's loss, for an A/B with `app`
    trl-same   a plain trl script with the same settings (padding-free, bf16 autocast, assistant-only
               loss); its loss is transformers' own, since trl 1.15's fused Triton loss crashes on CPU
    trl-default trl's defaults (padded batches, gradient checkpointing, bf16, max_length 1024) with the
               same loss fallback, plus use_cpu
    tutorial   the tutorial's recipe: every row padded to 2048 tokens, gradient checkpointing, batch 4

Each runs in its own process; the first step is warm-up and left out. With `--repeat N` the setups
alternate (A B A B ...) and the median round of each counts. Writes bench/results/<date>-cpu-train.json
and prints a Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/cpu_train.py [--steps 12] [--only app,app-model-loss] [--repeat 4]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "examples" / "data" / "pirate.jsonl"
MODELS = Path(os.environ.get("WORKBENCH_TEST_CACHE", ROOT / ".cache" / "tests")) / "models"  # the tests' converted copy
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SETUPS = ("app", "app-model-loss", "trl-same", "trl-default", "tutorial")
STEPS = {"trl-default": 8, "tutorial": 3}  # the slow ones take fewer steps


class Clock:
    """Wall and process CPU seconds of each training step (on_step_begin to on_step_end). CPU seconds
    hardly change when other processes share the cores, so the ratios hold on a busy machine too."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_begin(self, *a, **k):
                clock.started = (time.perf_counter(), time.process_time())

            def on_step_end(self, *a, **k):
                clock.wall.append(time.perf_counter() - clock.started[0])
                clock.cpu.append(time.process_time() - clock.started[1])

        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.callback = Callback()

    def result(self, tokens: list[int]) -> dict:
        """Steps after the first (warm-up): real tokens per wall second and per CPU second. The data loader
        fetches one batch ahead, so batches past the last step are left out."""
        tokens, wall, cpu = tokens[1:len(self.wall)], self.wall[1:], self.cpu[1:]
        return {"tokens_per_s": sum(tokens) / sum(wall), "tokens_per_cpu_s": sum(tokens) / sum(cpu), "tokens": tokens,
                "per_step": [round(n / t, 1) for n, t in zip(tokens, wall)],
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def run_app(steps: int, model_loss: bool = False) -> dict:
    from engine.default_model import ensure_default_model
    from engine.train import callbacks, presets, runs, trainer, worker
    from engine.workspace import Workspace

    clock = Clock()
    if model_loss:
        trainer.WorkbenchTrainer._plain_loss = model_loss_with_accuracy

    class Timed(callbacks.ProgressCallback):  # the worker's own progress callback, plus the clock
        def on_step_begin(self, *a, **k):
            clock.callback.on_step_begin()

        def on_step_end(self, *a, **k):
            clock.callback.on_step_end()

    callbacks.ProgressCallback = Timed
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        model = ensure_default_model(MODELS)
        (ws.models / model.name).symlink_to(model, target_is_directory=True)  # converted once, not per run
        config = presets.build("quick-test", str(DATA), train={"max_steps": steps + 1, "save_steps": 1000},
                               probes={"prompts": []})
        run = runs.create_run(ws, config, name="bench")
        worker.main(run.path, ws)
        run = runs.load_run(ws, "bench")
        assert run.state == "completed", run.status
        seen = [0] + [e["tokens"] for e in run.events if e["type"] == "step"]
    return clock.result([b - a for a, b in zip(seen, seen[1:])])


def model_loss_with_accuracy(self, model, inputs, return_outputs, num_items_in_batch):
    """transformers' own loss (the model's, on the full logits), with the token accuracy the app logs."""
    import torch
    from transformers import Trainer

    labels = inputs["labels"]
    loss, outputs = Trainer.compute_loss(self, model, {**inputs, "use_cache": False}, True, num_items_in_batch)
    with torch.no_grad():
        targets = labels[:, 1:]
        mask = targets != -100
        correct = (outputs.logits[:, :-1].argmax(-1) == targets)[mask].sum()
        self.accuracies["train" if self.model.training else "eval"].append((correct / mask.sum().clamp(min=1)).item())
    return (loss, outputs) if return_outputs else loss


def run_trl(setup: str, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer
    from trl import SFTConfig, SFTTrainer

    from engine.default_model import ensure_default_model
    from engine.chat.templates import prepare_tokenizer

    path = ensure_default_model(MODELS)
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
        args = SFTConfig(**common, bf16=True, max_length=None)  # with gradient checkpointing, as the tutorial
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
    clock = Clock()
    trainer.add_callback(clock.callback)
    trainer.train()
    return clock.result(tokens)


def one(setup: str, steps: int) -> None:
    result = run_app(steps, setup == "app-model-loss") if setup.startswith("app") else run_trl(setup, steps)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--only", default=",".join(SETUPS))
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the setups, alternating; the median "
                        "round of each counts")
    parser.add_argument("--threads", type=int, help="torch threads in each setup (default: all cores)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.steps)

    from bench.machine import describe

    rounds: dict[str, list[dict]] = {}
    for round_ in range(args.repeat):
        for setup in args.only.split(","):
            if setup == "tutorial" and round_:  # minutes a step: one round is plenty to see the gap
                continue
            steps = min(args.steps, STEPS.get(setup, args.steps))
            load = os.getloadavg()[0]
            env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
            done = subprocess.run([sys.executable, __file__, "--one", setup, "--steps", str(steps)], cwd=ROOT,
                                  capture_output=True, text=True, env=env)
            line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if not line:
                sys.exit(f"{setup} failed:\n{done.stderr[-3000:]}")
            rounds.setdefault(setup, []).append({**json.loads(line[-1][7:]), "steps": steps, "load_before": round(load, 2)})
            print(setup, round(rounds[setup][-1]["tokens_per_s"], 1), "tokens/s, load", round(load, 1), flush=True)
    # The median round (the lower of the middle two for an even count).
    median = {setup: sorted(rs, key=lambda r: r["tokens_per_s"])[(len(rs) - 1) // 2] for setup, rs in rounds.items()}

    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "threads": args.threads or os.cpu_count(),
              "median": median, "rounds": rounds}
    subset = "" if args.only == ",".join(SETUPS) else "-" + args.only.replace(",", "+")  # never overwrite a full run
    out = ROOT / "bench" / "results" / f"{result['date']}-cpu-train{subset}{'-1thread' if args.threads == 1 else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    app = median.get("app")
    print("\n| setup | real tokens/s | app is | real tokens per CPU-second | app is | peak RSS GB | steps | load before |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for setup, r in median.items():
        ratio = (f"{app['tokens_per_s'] / r['tokens_per_s']:.2f}x", f"{app['tokens_per_cpu_s'] / r['tokens_per_cpu_s']:.2f}x") \
            if app else ("", "")
        print(f"| {setup} | {r['tokens_per_s']:.0f} | {ratio[0]} | {r['tokens_per_cpu_s']:.0f} | {ratio[1]} | "
              f"{r['peak_rss_gb']:.1f} | {r['steps']} | {r['load_before']} |")


if __name__ == "__main__":
    main()
