"""Random-init models of real architectures, saved and loaded as a user would load a Hub model (they live in
tests/model_shapes.py, which the tests share), and running one configuration of a benchmark on one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.model_shapes import MODELS  # noqa: E402


def run_config(shape: str, cmd: list[str], deadline: float, cap_s: float, least_s: float = 30) -> dict:
    """Build the shape, then run one configuration's process (`cmd`, which prints a `RESULT {json}`
    line), all before `deadline` (time.time()): building counts against a call's budget too, so the
    call ends in time. The result, or {"error": ...}."""
    try:
        if deadline - time.time() < least_s:
            raise subprocess.TimeoutExpired(cmd, 0)
        if not (MODELS / shape / "config.json").exists():  # a process of its own, so the GPU is free after it
            subprocess.run([sys.executable, "-c", f"from tests.model_shapes import build; build({shape!r})"], cwd=ROOT,
                           check=True, timeout=deadline - time.time())
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=min(deadline - time.time(), cap_s))
    except subprocess.TimeoutExpired:
        return {"error": "out of time (--budget-s)"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": (proc.stderr or proc.stdout)[-1200:]}
