"""Hub push, against a stand-in of the Hub on 127.0.0.1 (tests/fake_hub.py: the real Hub cannot be
reached from here), which records every request, so the tests check that the token travels in the
Authorization header and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from export_runs import make_run
from fake_hub import TOKEN, fake_hub

from engine.export.exporter import export
from engine.export.hub import push
from engine.export.source import ExportError
from engine.files import MARKER

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def hub():
    with fake_hub() as served:
        yield served


@pytest.fixture(scope="module")
def exported(new_workspace, tiny_model_path):
    ws = new_workspace("hub", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    return ws, export(ws, "tiny", "adapter")


def _cli(args: list[str], workspace, endpoint: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
                   "WORKBENCH_HOME": str(workspace.root), **env}
    environment.pop("HF_TOKEN", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "engine", "export", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=600)


def test_push_from_the_cli_creates_a_private_repo_with_every_file_and_keeps_the_token_secret(exported, hub):
    workspace, result = exported
    handler, endpoint = hub
    done = _cli(["tiny", "--format", "modelfile", "--gguf", "f16"], workspace, endpoint)
    assert done.returncode == 2 and "Export a GGUF first" in done.stderr  # a clear refusal, nothing pushed

    done = _cli(["tiny", "--format", "adapter", "--push", "someone/tiny-adapter"], workspace, endpoint, HF_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    assert f"Pushed to {endpoint}/someone/tiny-adapter" in done.stdout
    assert handler.repos["someone/tiny-adapter"]["visibility"] == "private"
    uploaded = handler.files["someone/tiny-adapter"]
    assert set(uploaded) == {p.name for p in result.path.iterdir()} - {MARKER}  # the app's own "may replace" mark stays home
    assert uploaded["adapter_model.safetensors"] == (result.path / "adapter_model.safetensors").read_bytes()
    # The token went in the Authorization header of the repository requests, and nowhere else.
    repo_requests = [r for r in handler.requests if r["path"] != "/api/validate-yaml"]
    assert [r["path"].split("/")[-2] for r in repo_requests] == ["repos", "preupload", "commit"]
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in repo_requests)
    assert not any(TOKEN in v for r in handler.requests for k, v in r["headers"].items() if k != "authorization")
    assert not any(TOKEN.encode() in r["body"] for r in handler.requests)
    assert TOKEN not in done.stdout + done.stderr
    written = [p for p in workspace.root.rglob("*") if p.is_file()]
    assert written and not any(TOKEN.encode() in p.read_bytes() for p in written)


def test_push_public_on_request_and_refusals_say_what_to_do(exported, hub, monkeypatch):
    workspace, result = exported
    handler, endpoint = hub
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ExportError, match="needs a token"):
        push(result.path, "someone/x")
    with pytest.raises(ExportError, match="not a Hub repository name"):
        push(result.path, "no-owner", token=TOKEN)
    with pytest.raises(ExportError, match="not a Hub repository name"):
        push(result.path, "someone/two--dashes", token=TOKEN)  # huggingface_hub's own rule
    with pytest.raises(ExportError, match="not a finished export"):
        push(result.path.parent, "someone/x", token=TOKEN)
    wrong = "hf_wrongTokenWrongTokenWrongToken0000"
    with pytest.raises(ExportError, match="token was refused") as refused:
        push(result.path, "someone/x", token=wrong)
    assert wrong not in str(refused.value)
    assert push(result.path, "someone/public", token=TOKEN, private=False) == f"{endpoint}/someone/public"
    assert handler.repos["someone/public"]["visibility"] == "public"
