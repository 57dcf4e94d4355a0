"""Chat decoding on the GPU, batch 1: time to first token for a 512-token prompt and decode tokens/s
over 256 new tokens, greedy. Stacks: plain transformers `generate`, unsloth's `for_inference`, and the
app's path (engine.chat.models.ModelManager.stream: static cache, compiled decoding step). For the app, a
first reply of 64 tokens is asked as soon as the load returns (first_reply_*: answered uncompiled
while the compiled step is built in the background), then compiled_ready_s after the load the
compiled step is ready; warmup_s is one compiled reply before the timed ones. The app's workspace is
/tmp/ws for every process of a call, so a second app process of a shape reloads the compiled step from
the compile cache the first saved there (compile_source: 'cache').
Each configuration runs in its own process (clean peak memory); one JSON line each.

    python bench/gpu_generate.py [--configs llama-3.1-8b:app:16,...] [--out DIR] [--budget-s 540]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT_TOKENS, NEW_TOKENS = 512, 256
STACKS = ["transformers", "unsloth", "app"]
CONFIGS = [f"{shape}:{stack}:{bits}" for shape in ("llama-3.2-1b", "llama-3.1-8b") for bits in (16, 4) for stack in STACKS]


def one(shape: str, stack: str, four_bit: bool) -> dict:
    if stack == "unsloth":
        import unsloth  # noqa: F401  (before transformers)
    import torch

    from tests.model_shapes import build, prompt_words

    path = build(shape)
    os.environ.setdefault("WORKBENCH_MODEL_DIRS", str(path.parent))  # the app loads only from listed places
    messages = [{"role": "user", "content": prompt_words(PROMPT_TOKENS - 5)}]
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if stack == "app":
        from engine.chat.models import ModelManager
        from engine.chat.sampling import Sampling
        from engine.workspace import Workspace

        manager = ModelManager(Workspace.from_env("/tmp/ws"))
        loaded = manager.load(str(path), load_in_4bit=four_bit, max_seq_length=2048)
        load_s = time.perf_counter() - t0

        def run(n):
            return manager.generate(messages, Sampling.parse(temperature=0, max_new_tokens=n)).stats

        # The first reply, asked as soon as the load returns: uncompiled while the compiled step is built.
        first = run(64)
        early = {"first_reply_first_token_s": round(first.first_token_s, 2),
                 "first_reply_tokens_per_s": round(first.tokens_per_s, 1),
                 "first_reply_while": loaded.decoding.state}
        loaded.decoding.wait()
        early["compiled_ready_s"] = round(time.perf_counter() - t0 - load_s, 1)  # counted from the end of the load
        t = time.perf_counter()
        run(NEW_TOKENS)  # one compiled reply before the timed ones
        warm_s = time.perf_counter() - t
        ttft = statistics.median(run(1).first_token_s for _ in range(3))
        stats = [run(NEW_TOKENS) for _ in range(2)]
        decode = statistics.median(s.tokens_per_s for s in stats)
        new_tokens = stats[-1].new_tokens
        early["decoding"] = loaded.decoding.state
        early["compile_source"] = loaded.decoding.source  # 'cache': rebuilt from the workspace's compile cache
    else:
        early = {}
        if stack == "unsloth":
            from unsloth import FastLanguageModel

            model, tok = FastLanguageModel.from_pretrained(str(path), max_seq_length=2048, dtype=torch.bfloat16,
                                                           load_in_4bit=four_bit)
            FastLanguageModel.for_inference(model)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

            q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_compute_dtype=torch.bfloat16) if four_bit else None
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda",
                                                         quantization_config=q)
        load_s = time.perf_counter() - t0
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = {k: v.cuda() for k, v in ids.items()}

        def timed(n):
            torch.cuda.synchronize()
            t = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,
                                 pad_token_id=tok.pad_token_id)
            torch.cuda.synchronize()
            return time.perf_counter() - t, out.shape[1] - ids["input_ids"].shape[1]

        t = time.perf_counter()
        timed(NEW_TOKENS), timed(NEW_TOKENS)
        warm_s = time.perf_counter() - t
        ttft = statistics.median(timed(1)[0] for _ in range(3))
        runs = [timed(NEW_TOKENS) for _ in range(2)]
        total, new_tokens = min(runs)
        decode = (new_tokens - 1) / (total - ttft)
    return {
        "shape": shape, "stack": stack, "weights": "4-bit" if four_bit else "bf16",
        "first_token_ms": round(ttft * 1000, 1), "decode_tokens_per_s": round(decode, 1), "new_tokens": new_tokens,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "load_s": round(load_s, 1),
        "warmup_s": round(warm_s, 1), **early,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=3, metavar=("SHAPE", "STACK", "BITS"))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="SHAPE:STACK:BITS,... in the order to run")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    parser.add_argument("--budget-s", type=float, default=540)
    args = parser.parse_args()
    if args.one:
        shape, stack, bits = args.one
        print("RESULT " + json.dumps(one(shape, stack, bits == "4")), flush=True)
        return
    import torch

    from bench.gpu_models import run_config

    card = torch.cuda.get_device_name(0)
    deadline, results = time.time() + args.budget_s, []
    out = Path(args.out) / f"{time.strftime('%Y-%m-%d')}-{card.replace(' ', '_')}-generate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for config in args.configs.split(","):
        shape, stack, bits = config.split(":")
        row = {"shape": shape, "stack": stack, "weights": "4-bit" if bits == "4" else "bf16", "card": card}
        row.update(run_config(shape, [sys.executable, __file__, "--one", shape, stack, bits], deadline, cap_s=240))
        results.append(row)
        print(json.dumps(row), flush=True)
        # Written after every configuration, so a call cut short still brings back what it measured.
        out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
