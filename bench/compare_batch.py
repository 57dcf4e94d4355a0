"""Compare on the default model: the two sides one after the other (as Compare did before issue 16)
against both in one batch (`ModelManager.stream_batch`, peft's mixed adapter batch), for the base model
against a run's adapter, greedy and with the Leaderboard preset and a seed. Also checks that each
side's text is the same both ways. Writes bench/results/<date>-compare-batch.json.

    .venv/bin/python bench/compare_batch.py [--rounds 3] [--tokens 80]

The adapter has the quick-test preset's size with random weights (bench/adapter_switch.py): the time
depends on its size, not on what it learned.
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

from bench.adapter_switch import make_run  # noqa: E402
from bench.machine import describe  # noqa: E402
from engine.compare import sides  # noqa: E402
from engine.chat.models import ModelManager  # noqa: E402
from engine.chat.sampling import preset  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def one_after_the_other(manager: ModelManager, sampling, adapter: str) -> tuple[float, list]:
    started = time.perf_counter()
    replies = [manager.generate(PROMPT, sampling, adapter=side) for side in (None, adapter)]
    return time.perf_counter() - started, replies


def together(manager: ModelManager, sampling, adapter: str) -> tuple[float, list]:
    started = time.perf_counter()
    for replies in manager.stream_batch([PROMPT, PROMPT], sampling, [None, adapter]):
        pass
    return time.perf_counter() - started, replies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=80)
    args = parser.parse_args()
    ws = Workspace.from_env(Path(tempfile.mkdtemp()) / "workspace")
    manager = ModelManager(ws)
    manager.load("default")
    make_run(ws, manager.loaded.path, "bench", ["adapter"])
    adapter = sides.activate(manager, sides.parse(ws, "bench"))
    results = {"machine": describe(), "threads": torch.get_num_threads(), "tokens_a_side": args.tokens, "cases": {}}
    for name in ("Precise", "Leaderboard"):
        sampling = preset(name).model_copy(update={"max_new_tokens": args.tokens, "seed": 1234})
        manager.generate(PROMPT, sampling.model_copy(update={"max_new_tokens": 4}))  # warm up
        case = {"sequential_s": [], "batched_s": [], "same_text": []}
        for _ in range(args.rounds):
            seconds, before = one_after_the_other(manager, sampling, adapter)
            case["sequential_s"].append(round(seconds, 2))
            seconds, after = together(manager, sampling, adapter)
            case["batched_s"].append(round(seconds, 2))
            case["same_text"].append([r.text for r in before] == [r.text for r in after])
        case["speedup"] = round(statistics.median(case["sequential_s"]) / statistics.median(case["batched_s"]), 2)
        case["new_tokens"] = [r.stats.new_tokens for r in after]
        results["cases"][name] = case
        print(name, json.dumps(case))
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-compare-batch.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
