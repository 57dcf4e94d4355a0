"""CPU benchmark of the default model: seconds from `python app.py` to a ready page (cached model),
the one-time conversion, time to first token and tokens/s. Writes bench/results/<date>-cpu-generate.json.

    .venv/bin/python bench/cpu_generate.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from engine.default_model import ensure_default_model  # noqa: E402
from engine.chat.models import ModelManager  # noqa: E402
from engine.chat.sampling import preset  # noqa: E402
from engine.workspace import Workspace  # noqa: E402

PROMPT = "Write a haiku about the sea"


def app_ready_seconds(ws: Workspace) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--workspace", str(ws.root), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("app.py exited before it was ready")
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        t = time.perf_counter()
        ensure_default_model(ws.models)
        first_conversion = time.perf_counter() - t
        t = time.perf_counter()
        ensure_default_model(ws.models)
        second_call = time.perf_counter() - t
        ready = [app_ready_seconds(ws) for _ in range(3)]

        manager = ModelManager(ws)
        manager.load("default")
        sampling = preset("Leaderboard").model_copy(update={"max_new_tokens": 64})
        manager.generate([{"role": "user", "content": "Hello"}], sampling)  # warm-up
        runs = []
        for seed in range(args.runs):
            reply = manager.generate([{"role": "user", "content": PROMPT}], sampling.model_copy(update={"seed": seed}))
            runs.append({"first_token_s": reply.stats.first_token_s, "tokens_per_s": reply.stats.tokens_per_s,
                         "new_tokens": reply.stats.new_tokens, "text": reply.text})
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": describe(),
        "conversion_first_s": round(first_conversion, 2),
        "conversion_second_s": round(second_call, 4),
        "app_ready_s": [round(r, 2) for r in ready],
        "first_token_s_median": round(statistics.median(r["first_token_s"] for r in runs), 3),
        "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in runs), 1),
        "runs": runs,
    }
    out = ROOT / "bench" / "results" / f"{result['date']}-cpu-generate.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print("first reply:", runs[0]["text"])


if __name__ == "__main__":
    main()
