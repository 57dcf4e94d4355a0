"""LoRA training speed and memory on the GPU: the app's worker against a raw unsloth script,
transformers + peft, and the tutorial's recipe (every row padded to 2048, its batch and optimizer).

Shapes: Llama-3.2-1B and Llama-3.1-8B, random init, saved and loaded as a user would load them.
LoRA r=16 on q/k/v/o/gate/up/down, maximum length 2048, 10 steps (--steps); figures are over the steps
after the first 2 (--warmup), wall time from the end of the last warm-up step to the end of the last step
(data loading and logging included, for every stack). Stacks whose batch shapes vary compile for new
shapes in their first steps: a longer warm-up (e.g. --steps 30 --warmup 10) measures them settled.
Data (one word = one token with the bench tokenizer):
  fixed:    every row 2048 tokens, batch 2 (the unsloth notebooks' batch);
  variable: log-normal lengths like roleplay chats, median 600 tokens, sigma 0.7, capped at 2048
            (mean 766: a row padded to 2048 is 37% real tokens), batch 16 (the tutorial's batch).
The worker runs with the app's default batching (padding-free), or (stacks worker-padded and
worker-packed) padded to the longest row of batches of similar lengths, or packed;
worker-no-checkpointing is the default with gradient checkpointing off, worker-all-checkpointed with it
on every layer (the plan otherwise chooses how many, per batch: engine/train/checkpointing.py), worker-cap24
the default as if the GPU had 24 GiB (WORKBENCH_GPU_MEMORY_GIB), worker-cap24-all-checkpointed both. The
tutorial pads every row to 2048. A worker's result has its per-step losses and the largest batch it trained,
and its events go to DIR/events/.
Each configuration runs in its own process; one JSON line each. With --profile the in-process stacks
(raw unsloth, transformers + peft, the tutorial) run three more steps under torch.profiler after the
timed ones and write DIR/profile-<config>.txt: wall time and GPU kernels a step, and the top operators
by GPU and by host time.

    python bench/gpu_train.py [--configs SHAPE:BITS:STACK:DATA,...] [--out DIR] [--budget-s 540]
                              [--steps 10 --warmup 2] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.model_shapes import MAX_LEN, MODELS, SHAPES, write_data  # noqa: E402  (shared with the tests)

STEPS, WARMUP, PROFILED = 10, 2, 3
CONFIGS = [  # shape:bits:stack:data, most important first: a call may run out of time
    "llama-3.2-1b:16:worker:fixed", "llama-3.2-1b:16:unsloth:fixed",
    "llama-3.2-1b:16:worker:variable", "llama-3.2-1b:16:worker-packed:variable", "llama-3.2-1b:16:tutorial:variable",
    "llama-3.1-8b:4:worker:fixed", "llama-3.1-8b:4:unsloth:fixed",
    "llama-3.2-1b:16:unsloth:variable", "llama-3.2-1b:16:transformers:fixed",
    "llama-3.1-8b:4:worker-packed:variable", "llama-3.1-8b:4:tutorial:variable",
]
BATCH = {"fixed": 2, "variable": 16}


def linear_params(shape: str) -> int:
    s = SHAPES[shape]
    h, i, n = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    kv = h // s["num_attention_heads"] * s["num_key_value_heads"]
    return n * (2 * h * h + 2 * h * kv + 3 * h * i) + 128256 * h  # layers + LM head


class Timer:
    """A TrainerCallback recording when each step ends, and a collator wrapper counting each batch's
    real tokens (unsloth's trainer does not log trl's `num_tokens`). Rows the tutorial padded itself
    look real to trl's collator: there the pad token, which the text never holds, tells them apart."""

    def __init__(self):
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                import torch

                torch.cuda.synchronize()
                outer.ends.append(time.perf_counter())

        self.ends, self.tokens, self.callback = [], [], CB()

    def counting(self, collate, pad_id: int | None = None):
        def wrapped(features):
            batch = collate(features)
            mask = (batch["input_ids"] != pad_id) if pad_id is not None else batch.get("attention_mask")
            self.tokens.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
            return batch

        return wrapped


class Profile:
    """A TrainerCallback running torch.profiler over the steps after the timed ones."""

    def __init__(self, path: Path):
        from transformers import TrainerCallback

        outer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == STEPS:
                    outer.start()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == STEPS + PROFILED:
                    outer.stop()

        self.path, self.callback, self.prof = path, CB(), None

    def start(self):
        import torch
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        self.prof.__enter__()
        self.began = time.perf_counter()

    def stop(self):
        import torch

        torch.cuda.synchronize()
        wall = (time.perf_counter() - self.began) / PROFILED
        self.prof.__exit__(None, None, None)
        # Kernels and copies run on the GPU, counted from the trace. (Summing the table's "Self CUDA"
        # column would count each kernel twice: once on its own row, once on the operator's.)
        kernels = sum(1 for e in self.prof.events() if e.device_type == torch.autograd.DeviceType.CUDA) / PROFILED
        self.summary = {"profile_wall_s": wall, "profile_kernels": kernels}
        averages = self.prof.key_averages()
        self.path.write_text(f"per step over {PROFILED} profiled steps: wall {wall:.3f} s, {kernels:.0f} kernels and copies\n"
                             + "\nby GPU time\n" + averages.table(sort_by="self_device_time_total", row_limit=20)
                             + "\nby host time\n" + averages.table(sort_by="self_cpu_time_total", row_limit=20))


def sft_args(stack: str, out: Path, batch: int, steps: int = STEPS):
    from trl import SFTConfig

    tutorial = stack == "tutorial"
    return SFTConfig(
        output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1, learning_rate=2e-5 if tutorial else 2e-4, logging_steps=1,
        optim="paged_adamw_8bit" if tutorial else "adamw_8bit", lr_scheduler_type="cosine", warmup_steps=0.03,
        bf16=True, save_strategy="no", report_to=[], max_length=MAX_LEN, disable_tqdm=True,
        dataset_text_field="text", dataset_num_proc=1,
        gradient_checkpointing=stack == "transformers",
    )


def run_trainer(shape: str, four_bit: bool, stack: str, data: Path, batch: int, work: Path,
                profile: Path | None = None) -> dict:
    import torch
    from datasets import Dataset


    path = MODELS / shape
    if stack in ("unsloth", "tutorial"):
        from unsloth import FastLanguageModel

        model, tok = FastLanguageModel.from_pretrained(str(path), max_seq_length=MAX_LEN, dtype=torch.bfloat16,
                                                       load_in_4bit=four_bit)
        model = FastLanguageModel.get_peft_model(
            model, r=16, lora_alpha=16, lora_dropout=0, bias="none", random_state=3407,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            use_gradient_checkpointing="unsloth")
    else:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16) \
            if four_bit else None
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda", quantization_config=q)
        if four_bit:
            model = prepare_model_for_kbit_training(model)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0, task_type="CAUSAL_LM",
                                                 target_modules="all-linear"))
    rows = [json.loads(line) for line in data.open()]
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    if stack == "tutorial":  # the tutorial's own tokenisation: every row padded to the maximum length
        tok.pad_token = "<|endoftext|>"
        enc = tok(texts, truncation=True, max_length=MAX_LEN, padding="max_length")
        dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    else:
        dataset = Dataset.from_dict({"text": texts})
    from trl import SFTTrainer

    timer = Timer()
    profiler = Profile(profile) if profile else None
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=dataset,
                         args=sft_args(stack, work / "out", batch, STEPS + (PROFILED if profile else 0)),
                         callbacks=[timer.callback] + ([profiler.callback] if profiler else []))
    trainer.data_collator = timer.counting(trainer.data_collator, tok.pad_token_id if stack == "tutorial" else None)
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    seconds = timer.ends[STEPS - 1] - timer.ends[WARMUP - 1]  # every step after the warm-up, all between them included
    real = sum(timer.tokens[WARMUP:STEPS])  # batch i is collated for step i (no dataloader workers)
    padded = batch * MAX_LEN * (STEPS - WARMUP) if stack == "tutorial" else None
    return {"s_per_step": seconds / (STEPS - WARMUP), "real_tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds if padded else None,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, **(profiler.summary if profiler else {})}


def run_worker(shape: str, four_bit: bool, batching: str, checkpointing: str, data: Path, batch: int,
               work: Path, cap_gib: float | None = None, events_to: Path | None = None) -> dict:
    import yaml


    run_dir = work / "ws" / "runs" / "bench"
    run_dir.mkdir(parents=True)
    config = {
        "model": {"name_or_path": str(MODELS / shape), "load_in_4bit": four_bit, "max_seq_length": MAX_LEN},
        "dataset": str(data),
        "lora": {"r": 16, "alpha": 16, "dropout": 0.0, "gradient_checkpointing": checkpointing},
        "train": {"max_steps": STEPS, "batch_size": batch, "gradient_accumulation": 1, "logging_steps": 1,
                  "save_steps": 1000, "optimizer": "adamw_8bit", "scheduler": "cosine", "batching": batching},
        "probes": {"prompts": []},
    }
    (run_dir / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, **({"WORKBENCH_GPU_MEMORY_GIB": str(cap_gib)} if cap_gib else {})}
    proc = subprocess.run([sys.executable, "-m", "engine", "train", str(run_dir)], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").open()] if (run_dir / "events.jsonl").exists() else []
    if events_to and events:
        events_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_dir / "events.jsonl", events_to)
    steps = [e for e in events if e.get("type") == "step"]
    if proc.returncode != 0 or len(steps) < STEPS:
        log = run_dir / "worker.log"
        raise RuntimeError((log.read_text() if log.exists() else proc.stderr)[-1500:])
    # Each step event has the tokens so far and the rate since the previous one: the same measure as above.
    tokens = [b["tokens"] - a["tokens"] for a, b in zip(steps[WARMUP - 1:], steps[WARMUP:])]
    seconds = sum(n / e["tokens_per_s"] for n, e in zip(tokens, steps[WARMUP:]))
    return {"real_tokens_per_s": sum(tokens) / seconds, "padded_tokens_per_s": None,
            "peak_gib": max(e["peak_memory_gb"] for e in steps) * 1e9 / 2**30,
            "backend": json.loads((run_dir / "status.json").read_text()).get("backend"),
            "startup_s": next((e["seconds"] for e in events if e.get("type") == "startup"), None),
            "checkpointing": next((e["text"] for e in events if e.get("text", "").startswith("Checkpointing")), None),
            "per_batch": next((e["text"] for e in events if e.get("text", "").startswith("Checkpointed layers")), None),
            "largest_batch_tokens": max(b["tokens"] - a["tokens"] for a, b in zip([{"tokens": 0}] + steps, steps)),
            "losses": [e.get("loss") for e in steps]}


def one(shape: str, four_bit: bool, stack: str, kind: str, work: Path, profile: Path | None = None,
        events_to: Path | None = None) -> dict:
    shutil.rmtree(work, ignore_errors=True)  # a warm machine keeps /tmp between calls
    work.mkdir(parents=True)
    data = write_data(kind, work / f"{kind}.jsonl", n=max(400, STEPS * BATCH[kind]))
    if stack.startswith("worker"):
        batching = {"worker-packed": "packed", "worker-padded": "padded"}.get(stack, "padding_free")
        checkpointing = "off" if stack.endswith("no-checkpointing") else "on" if stack.endswith("all-checkpointed") \
            else "auto"
        cap = 24 if stack.startswith("worker-cap24") else None
        return run_worker(shape, four_bit, batching, checkpointing, data, BATCH[kind], work, cap, events_to)
    return run_trainer(shape, four_bit, stack, data, BATCH[kind], work, profile)


def matmul_tflops() -> float:
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * 20 / (time.perf_counter() - t) / 1e12


def main() -> None:
    global STEPS, WARMUP
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=4, metavar=("SHAPE", "BITS", "STACK", "DATA"))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="SHAPE:BITS:STACK:DATA,... in the order to run")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    parser.add_argument("--budget-s", type=float, default=540)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--warmup", type=int, default=WARMUP, help="steps left out of the figures")
    parser.add_argument("--profile", action="store_true", help="profile the in-process stacks (see above)")
    args = parser.parse_args()
    STEPS, WARMUP = args.steps, args.warmup
    if args.one:
        shape, bits, stack, kind = args.one
        if stack in ("unsloth", "tutorial"):
            import unsloth  # noqa: F401  (it patches transformers and trl, so it comes first; never for the others)
        name = f"{shape}-{bits}-{stack}-{kind}"
        profile = Path(args.out) / f"profile-{name}.txt" if args.profile else None
        if profile:
            profile.parent.mkdir(parents=True, exist_ok=True)
        events_to = Path(args.out) / "events" / f"{time.strftime('%Y-%m-%d')}-{name}.jsonl"
        result = one(shape, bits == "4", stack, kind, Path(f"/tmp/bench-{name}"), profile, events_to)
        print("RESULT " + json.dumps(result), flush=True)
        return
    import torch

    from bench.gpu_models import run_config

    card = torch.cuda.get_device_name(0)
    peak = matmul_tflops()
    print(json.dumps({"card": card, "bf16_matmul_tflops": round(peak, 1)}), flush=True)
    deadline, results = time.time() + args.budget_s, []
    out = Path(args.out) / f"{time.strftime('%Y-%m-%d')}-{card.replace(' ', '_')}-train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for config in args.configs.split(","):
        shape, bits, stack, kind = config.split(":")
        four_bit = bits == "4"
        row = {"card": card, "shape": shape, "weights": "4-bit" if four_bit else "bf16", "stack": stack, "data": kind,
               "steps": STEPS, "warmup": WARMUP}
        cmd = [sys.executable, __file__, "--one", shape, "4" if four_bit else "16", stack, kind, "--out", args.out,
               "--steps", str(STEPS), "--warmup", str(WARMUP)]
        row.update(run_config(shape, cmd + (["--profile"] if args.profile else []), deadline, cap_s=300, least_s=40))
        if "real_tokens_per_s" in row:
            row["mfu"] = round(6 * linear_params(shape) * row["real_tokens_per_s"] / (peak * 1e12), 3)
        results.append(row)
        print(json.dumps(row), flush=True)
        # Written after every configuration, so a call cut short still brings back what it measured.
        out.write_text(json.dumps({"bf16_matmul_tflops": peak, "results": results}, indent=2))


if __name__ == "__main__":
    main()
