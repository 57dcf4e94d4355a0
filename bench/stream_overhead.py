"""Host time the app's streaming adds to each generated token: a 1-layer random llama (so the model's
own step is a fraction of a millisecond) generating 256 greedy tokens through plain `generate` and
through the app's path (engine.chat.generation.stream: streamer, reading thread, cancel check). On a GPU
a token takes a few milliseconds, so this overhead is a share of chat speed there too.
Writes bench/results/<date>-stream-overhead.json.

    .venv/bin/python bench/stream_overhead.py [--rounds 12]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from bench.machine import describe  # noqa: E402
from engine.default_model import ensure_default_model  # noqa: E402
from engine.chat.generation import render_prompt, stream  # noqa: E402
from engine.chat.sampling import Sampling  # noqa: E402

TOKENS = 256
ASK = [{"role": "user", "content": "Tell me about the sea."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ensure_default_model(ROOT / ".cache" / "tests" / "models"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)).eval()
    model.generation_config.eos_token_id = None
    ids = render_prompt(tokenizer, ASK)
    greedy = Sampling.parse(temperature=0, max_new_tokens=TOKENS)

    def plain() -> float:
        with torch.inference_mode():
            started = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=TOKENS, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)
            return (time.perf_counter() - started) / TOKENS

    def app() -> float:
        started = time.perf_counter()
        final = list(stream(model, tokenizer, ASK, greedy))[-1]
        assert final.stats.new_tokens == TOKENS, final.stats
        return (time.perf_counter() - started) / TOKENS

    times = {"plain_generate": [], "app_stream": []}
    for _ in range(args.rounds):  # interleaved, so a busy moment hits both
        times["plain_generate"].append(plain())
        times["app_stream"].append(app())
    ms = {k: round(statistics.median(v) * 1e3, 3) for k, v in times.items()}
    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "tokens": TOKENS, "rounds": args.rounds,
              "median_ms_per_token": ms, "app_overhead_ms_per_token": round(ms["app_stream"] - ms["plain_generate"], 3)}
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"{result['date']}-stream-overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
