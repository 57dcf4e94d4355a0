"""Time and peak memory of each export of the default model (SmolLM2-135M), each run as
`python -m engine export` in its own process, verification included. Writes
bench/results/<date>-export.json and prints the table for bench/RESULTS.md.

    .venv/bin/python bench/export_bench.py [--formats adapter,merged16,...]

The run is a stand-in (a LoRA r=8 on every linear layer with random non-zero B matrices,
tests/export_runs.py): an export's cost does not depend on how the adapter was trained.
Peak memory is the largest resident set of any one process of the export (the converter and the
quantiser run as child processes), from the kernel's accounting (wait4).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.machine import describe  # noqa: E402
from engine.default_model import ensure_default_model  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from export_runs import ensure_llama_cpp, make_run  # noqa: E402

FORMATS = ("adapter", "merged16", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m")


def run_export(ws: Workspace, fmt: str) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": str(ws.root), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine", "export", "bench", "--format", fmt], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    verifying = None
    for line in proc.stderr:
        if verifying is None and "Verifying" in line:
            verifying = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - started
    folder = ws.runs / "bench" / "exports" / fmt
    report = json.loads((folder / "verification.json").read_text())
    return {
        "format": fmt,
        "exit_code": os.waitstatus_to_exitcode(status),
        "seconds_total": round(total, 1),
        "seconds_writing": round((verifying or started) - started, 1),
        "seconds_verifying": round(total - ((verifying or started) - started), 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "size_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1),
        "passed": report["passed"],
        "identical": report["identical"],
        "argmax_agreement": round(report["argmax_agreement"], 4),
        "first_difference": report["first_difference"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    ensure_llama_cpp("quantizer")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "ws")
        model = ensure_default_model(ROOT / ".cache" / "tests" / "models")
        (ws.models / model.name).symlink_to(model, target_is_directory=True)
        make_run(ws, "bench", "default", model, scale=0.03)
        for fmt in args.formats.split(","):
            load = os.getloadavg()[0]
            results.append({**run_export(ws, fmt), "load_before": round(load, 1)})
            print(json.dumps(results[-1]), flush=True)
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-export.json"
    out.write_text(json.dumps({"date": str(datetime.date.today()), "machine": describe(), "model": "SmolLM2-135M-Instruct",
                               "results": results}, indent=2) + "\n")
    print(f"\nwritten {out}\n")
    print("| format | total | writing | verifying | peak RSS | size | answers (64 greedy tokens, 3 prompts) | argmax agreement |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        answers = "identical" if r["identical"] else f"differ from token {r['first_difference'] + 1}"
        print(f"| {r['format']} | {r['seconds_total']} s | {r['seconds_writing']} s | {r['seconds_verifying']} s | "
              f"{r['peak_rss_mb']} MB | {r['size_mb']} MB | {answers} | {r['argmax_agreement']:.1%} |")


if __name__ == "__main__":
    main()
