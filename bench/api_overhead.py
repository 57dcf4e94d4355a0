"""The OpenAI-compatible API against the in-app chat, on the same app and model: time to the first
streamed token and tokens a second, as a client sees them, for the same prompt with the Precise preset
(the same reply both ways). The in-app chat is the Chat tab's own event, called through Gradio's queue as
the page calls it; the API is called with the official `openai` client. Rounds alternate between the two.
Writes bench/results/<date>-api-overhead.json.

    .venv/bin/python bench/api_overhead.py [--rounds 5] [--tokens 96]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper and a storm."


def launch(workspace: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(workspace.parent / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--workspace", str(workspace), "--port", str(port)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start")


def _has_reply(history) -> bool:
    """Whether a streamed chatbot value (whole, or Gradio's list of diff operations) holds reply text."""
    if history and isinstance(history[0], list):  # [["append", path, "text"], ...]
        return any(isinstance(op[-1], str) and op[-1] for op in history)
    return bool(history) and history[-1].get("role") == "assistant" and bool(history[-1].get("content"))


def in_app(url: str, tokens: int, session: str) -> dict:
    """The Chat tab's `answer` event, with the page's own inputs: the history, system prompt, side and sampling."""
    config = httpx.get(url + "config").json()
    components = {c["id"]: c for c in config["components"]}
    event = next(d for d in config["dependencies"] if d["api_name"] == "answer")
    data = []
    for i in event["inputs"]:
        props = components[i].get("props", {})
        value = props.get("value")
        label = props.get("label") or ""
        if components[i]["type"] == "chatbot":
            value = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]  # as the page sends it
        elif label.lower().startswith("temperature"):
            value = 0.0
        elif "max new tokens" in label.lower() or label.lower().startswith("max"):
            value = tokens
        data.append(value)
    started = time.perf_counter()
    httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": event["id"], "session_hash": session}).raise_for_status()
    first, stats = None, ""
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=600) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_generating" and first is None and _has_reply(message["output"]["data"][0]):
                first = time.perf_counter()
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise SystemExit(f"the chat refused: {message['output']}")
                stats = message["output"]["data"][1]
                break
    ended = time.perf_counter()
    new = int(stats.split(" tokens")[0])
    return {"first_token_s": round(first - started, 3), "tokens": new,
            "tokens_per_s": round((new - 1) / (ended - first), 2)}


def through_api(url: str, tokens: int) -> dict:
    client = openai.OpenAI(base_url=url + "v1", api_key="unused", max_retries=0, timeout=600)
    started = time.perf_counter()
    first, usage = None, None
    for chunk in client.chat.completions.create(model="base", messages=[{"role": "user", "content": PROMPT}],
                                                temperature=0, max_tokens=tokens, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        usage = chunk.usage or usage
    ended = time.perf_counter()
    new = usage.completion_tokens
    return {"first_token_s": round(first - started, 3), "tokens": new,
            "tokens_per_s": round((new - 1) / (ended - first), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    proc, url = launch(Path(tempfile.mkdtemp()) / "workspace")
    try:
        through_api(url, 4), in_app(url, 4, "warm")  # warm up both paths
        rows = {"in_app": [], "api": []}
        for r in range(args.rounds):
            rows["in_app"].append(in_app(url, args.tokens, f"round{r}"))
            rows["api"].append(through_api(url, args.tokens))
            print(r, rows["in_app"][-1], rows["api"][-1], flush=True)
    finally:
        proc.terminate()
    median = {k: {m: statistics.median(x[m] for x in v) for m in ("first_token_s", "tokens_per_s")} for k, v in rows.items()}
    result = {"machine": describe(), "date": str(datetime.date.today()), "tokens": args.tokens, "rounds": rows,
              "median": median,
              "api_per_token_overhead": round(median["in_app"]["tokens_per_s"] / median["api"]["tokens_per_s"] - 1, 3)}
    print(json.dumps(result["median"]), "per-token overhead", result["api_per_token_overhead"])
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-api-overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
