"""Many chat sessions at once against the real app (issue 17, item 6): `python app.py` started as a subprocess
on the default model (CPU), one session alone for BASELINE_S, then SESSIONS sessions chatting without pause
for LOAD_S. Each session streams its replies from the OpenAI-compatible API (the Chat tab's events are
private, so gradio_client cannot call them; both go through the same scheduler, engine/chat/serving.py).
Reports errors, first-token p50/p95, total tokens/s against one session's, and the app's RSS before and
after the load. All sessions come from this one address, so the per-address rate limit is raised for the
run (WORKBENCH_CHATS_PER_MINUTE); the rows-at-once limit stays at its default.

    python -m bench.load_chat [--sessions 20] [--seconds 120] [--out bench/results/load_chat.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from engine.default_model import NAME as DEFAULT_NAME

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["What is the capital of France?", "Tell me a short story about a cat.", "Name three colours.",
             "Give me a tip for learning to cook.", "Why is the sky blue?", "Write a haiku about rain."]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_app(workspace: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_CHATS_PER_MINUTE": "10000"}
    proc = subprocess.Popen([sys.executable, "app.py", "--workspace", str(workspace), "--port", str(port)], cwd=ROOT,
                            env=env, stdout=open(workspace / "app.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"the app did not start: {(workspace / 'app.log').read_text()[-2000:]}")


def one_reply(client: httpx.Client, url: str, question: str, max_tokens: int) -> tuple[float, int]:
    """(seconds to the first text, tokens of the reply) for one streamed chat completion."""
    started, first, tokens = time.perf_counter(), None, 0
    body = {"model": "base", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", url + "/v1/chat/completions", json=body, timeout=300) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:200]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if first is None and any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                first = time.perf_counter() - started
    return (first if first is not None else time.perf_counter() - started), tokens


def chat_for(url: str, seconds: float, sessions: int, max_tokens: int) -> dict:
    firsts, tokens, errors = [], [0], []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def session(i: int) -> None:
        with httpx.Client() as client:
            turn = 0
            while time.perf_counter() < end:
                try:
                    first, n = one_reply(client, url, QUESTIONS[(i + turn) % len(QUESTIONS)], max_tokens)
                    with lock:
                        firsts.append(first)
                        tokens[0] += n
                except Exception as e:  # counted and shown, the session goes on
                    with lock:
                        errors.append(str(e)[:200])
                turn += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    q = statistics.quantiles(firsts, n=20) if len(firsts) >= 2 else [float("nan")] * 19
    return {"sessions": sessions, "seconds": round(took, 1), "replies": len(firsts), "errors": len(errors),
            "error_samples": errors[:3], "first_token_p50_s": round(statistics.median(firsts), 2) if firsts else None,
            "first_token_p95_s": round(q[18], 2), "tokens": tokens[0], "tokens_per_s": round(tokens[0] / took, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--port", type=int, default=7931)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_chat.json"))
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="load-chat-"))
    converted = Path(os.environ.get("WORKBENCH_TEST_CACHE", ROOT / ".cache" / "tests")) / "models" / DEFAULT_NAME
    if converted.is_dir():  # the default model converted once already (else the app converts it at start)
        (workspace / "models").mkdir()
        (workspace / "models" / DEFAULT_NAME).symlink_to(converted, target_is_directory=True)
    url = f"http://127.0.0.1:{args.port}"
    proc = start_app(workspace, args.port)
    try:
        one_reply(httpx.Client(), url, "Say hi.", 8)  # warm-up
        alone = chat_for(url, args.baseline_seconds, 1, args.max_tokens)
        before = rss_mb(proc.pid)
        load = chat_for(url, args.seconds, args.sessions, args.max_tokens)
        after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
              "cpus": os.cpu_count(), "alone": alone, "load": load, "rss_before_mb": round(before),
              "rss_after_mb": round(after), "rss_growth": round(after / before - 1, 3),
              "speedup": round(load["tokens_per_s"] / alone["tokens_per_s"], 2) if alone["tokens_per_s"] else None}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
