"""Shared fixtures: the real default model (converted once into a cache kept between test runs)
and a tiny random llama with the default model's tokenizer, for fast tests."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.default_model import ensure_default_model
from engine.workspace import Workspace

CACHE = Path(os.environ.get("WORKBENCH_TEST_CACHE", Path(__file__).resolve().parent.parent / ".cache" / "tests"))
# The owner's model folders (engine/access.py): the tests load models from their cache and temporary folders.
os.environ.setdefault("WORKBENCH_MODEL_DIRS", os.pathsep.join([str(CACHE / "models"), tempfile.gettempdir()]))


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """SmolLM2-135M-Instruct as safetensors (converted from the packaged GGUF on first use)."""
    return ensure_default_model(CACHE / "models")


@pytest.fixture(scope="session")
def tiny_model_path(default_model_path: Path) -> Path:
    """A 2-layer llama (hidden 64) with random weights and SmolLM2's tokenizer and chat template."""
    target = CACHE / "models" / "tiny-llama"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from engine.files import atomic_dir

    tok = AutoTokenizer.from_pretrained(default_model_path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    with atomic_dir(target) as tmp:
        LlamaForCausalLM(config).save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def fresh_workspace(root: Path, default_model: Path | None) -> Workspace:
    ws = Workspace.from_env(root)
    if default_model is not None:  # linked, not copied
        (ws.models / default_model.name).symlink_to(default_model, target_is_directory=True)
    return ws


@pytest.fixture
def workspace(tmp_path: Path, default_model_path: Path):
    """A fresh workspace whose models/ already holds the converted default model (linked, not copied).
    Training workers a test leaves running (it failed, or timed out) are ended with it, so they do
    not slow the tests after it."""
    ws = fresh_workspace(tmp_path / "workspace", default_model_path)
    yield ws
    end_workers(ws)


@pytest.fixture(scope="session")
def new_workspace(tmp_path_factory, request):
    """The `workspace` above for fixtures a module shares, and for tests that need no model:
    `new_workspace("export")` is a fresh one, `model=False` leaves its models/ empty (and converts
    nothing). Workers left running in any of them are ended at the end of the session."""
    made: list[Workspace] = []

    def make(name: str = "workspace", model: bool = True) -> Workspace:
        default_model = request.getfixturevalue("default_model_path") if model else None
        made.append(fresh_workspace(tmp_path_factory.mktemp(name) / "workspace", default_model))
        return made[-1]

    yield make
    for ws in made:
        end_workers(ws)


def end_workers(ws: Workspace) -> None:
    from engine.train.runs import list_runs

    for run in list_runs(ws):
        if run.live and run.status.pid:
            _end_group(run.status.pid)


def _end_group(pid: int) -> None:
    """Ends a worker with every process of its session (torchrun and its ranks, for several)."""
    import signal

    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(autouse=True, scope="module")
def _workers_end_with_their_module(tmp_path_factory):
    """A training worker of the tests' folders still running when its module ends (a test left it,
    or closed the app that started it) is ended and named in a warning: on two cores one stray
    worker halves the speed of every test after it."""
    yield
    import warnings

    import psutil

    base = tmp_path_factory.getbasetemp().resolve()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "--workspace" in cmd[:-1] and "engine" in cmd and "train" in cmd:
            if Path(cmd[cmd.index("--workspace") + 1]).resolve().is_relative_to(base):
                warnings.warn(f"a training worker outlived its test module; ended: {' '.join(cmd)}")
                _end_group(proc.pid)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched_app(ws: Workspace, *args: str, name_workspace: bool = True, env: dict | None = None):
    """`python app.py` on a free port in a real subprocess, serving `ws` (its log in `ws.root`; with
    `name_workspace=False` the app finds its workspace itself, as on a Space; `env` added to its
    environment); yields its URL."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    log = open(ws.root / "app.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "app.py", *(["--workspace", str(ws.root)] if name_workspace else []), "--port", str(port), *args],
        cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"app did not start; log:\n{(ws.root / 'app.log').read_text()}")
            time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, default_model_path: Path):
    """The app with the default model loaded and a workspace of its own; yields (url, workspace)."""
    ws = fresh_workspace(tmp_path_factory.mktemp("app") / "workspace", default_model_path)
    with launched_app(ws) as url:
        yield url, ws


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download needs the open internet)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield b
        b.close()


ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
