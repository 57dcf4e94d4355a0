"""Go's own text/template as the judge of the Modelfile TEMPLATEs: tools/gotemplate/main.go (Ollama's
message structure and template functions), built once per source change with Debian's Go into
.cache/gotemplate. No Go toolchain fails the test with the command that installs it (never a skip)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tools" / "gotemplate"
INSTALL = "make go-toolchain   (that is: apt-get install -y golang-go)"


def binary() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"Go is needed to judge the Ollama templates and is not installed: run {INSTALL}")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(SOURCE.glob("*.go")) + [SOURCE / "go.mod"]))
    cache = ROOT / ".cache" / "gotemplate"
    target = cache / f"gotemplate-{digest.hexdigest()[:12]}"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOCACHE": str(cache / "go-build"), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
        tmp = target.with_suffix(".tmp")
        subprocess.run([go, "build", "-o", str(tmp), "."], cwd=SOURCE, env=env, check=True)
        os.replace(tmp, target)
    return target


def go_render(template: str, messages: list[dict], system: str = "", tools: list | None = None) -> str:
    """The prompt Ollama renders from a Modelfile TEMPLATE (and SYSTEM) for `messages` (and `tools`), sent as
    a client sends them to Ollama's /api/chat: a tool message's name as tool_name, arguments as an object."""
    messages = [{**m, **({"tool_name": m["name"]} if m["role"] == "tool" and "name" in m else {}),
                 "tool_calls": [_api_call(c) for c in m.get("tool_calls") or []]} for m in messages]
    request = json.dumps({"template": template, "system": system, "messages": messages, "tools": tools or []})
    done = subprocess.run([str(binary())], input=request, capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise AssertionError(f"Go's text/template refused the template: {done.stderr.strip()}")
    return done.stdout


def _api_call(call: dict) -> dict:
    arguments = call["function"].get("arguments") or {}
    return {"id": call.get("id", ""), "function": {"name": call["function"]["name"],
                                                   "arguments": json.loads(arguments) if isinstance(arguments, str) else arguments}}
