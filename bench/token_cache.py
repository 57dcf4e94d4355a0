"""The tokenisation cache: 50,000 Alpaca rows (the data benchmark's generator, as conversations)
rendered with the default model's training template by `engine.data.store.encode_rows`, the step the
plan and the training worker start with: first use (render and save), second use (load), and the
same rows with one changed (a new fingerprint: rendered again). Writes bench/results/<date>-token-cache.json.

    .venv/bin/python bench/token_cache.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data_read import alpaca_rows  # noqa: E402
from bench.machine import describe  # noqa: E402


def main() -> None:
    from engine.data.render import load_tokenizer
    from engine.data.store import encode_rows
    from engine.default_model import ensure_default_model
    from engine.workspace import Workspace

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    tokenizer = load_tokenizer(ensure_default_model(Workspace.from_env().models))
    rows = [{"messages": [{"role": "user", "content": f"{r['instruction']}\n{r['input']}".strip()},
                          {"role": "assistant", "content": r["output"]}]} for r in alpaca_rows(args.rows)]
    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "rows": len(rows)}
    with tempfile.TemporaryDirectory() as cache:
        for case, data in (("first", rows), ("second", rows), ("one row changed", [*rows[:-1], rows[0]])):
            started = time.perf_counter()
            encoded = encode_rows(data, tokenizer, cache)
            result[case + "_s"] = round(time.perf_counter() - started, 2)
            print(case, result[case + "_s"], "s", flush=True)
        result["tokens"] = sum(map(len, encoded["input_ids"]))
    out = ROOT / "bench" / "results" / f"{result['date']}-token-cache.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
