"""Hub push. The Hugging Face Hub cannot be reached from here, so the tests run a fake Hub on
127.0.0.1: huggingface_hub itself runs unchanged and talks HTTP to it (HF_ENDPOINT), so the fake
stands only at the network boundary. It records every request, which lets the tests check that the
token travels in the Authorization header and nowhere else."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from export_runs import make_run

from engine.export.exporter import export
from engine.export.hub import push
from engine.export.source import ExportError
from engine.files import MARKER

TOKEN = "hf_FAKEtokenForTestsOnly0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


class FakeHub(BaseHTTPRequestHandler):
    requests: list[dict]
    repos: dict[str, dict]
    files: dict[str, dict[str, bytes]]

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body": body})
        if self.path == "/api/validate-yaml":  # the model card's metadata, checked before a commit
            return self._reply(200, {"errors": [], "warnings": []})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"error": "Invalid credentials in Authorization header"})
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            self.repos[repo] = payload
            return self._reply(200, {"url": f"http://{self.headers['Host']}/{repo}", "name": repo, "id": repo})
        parts = self.path.split("/")  # /api/models/OWNER/NAME/(preupload|commit)/main
        if len(parts) != 7:
            return self._reply(404, {"error": f"not faked: {self.path}"})
        repo, action = "/".join(parts[3:5]), parts[5]
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in files]})
        if action == "commit":
            stored = self.files.setdefault(repo, {})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    stored[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            return self._reply(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/1", "commitOid": "1" * 40})
        self._reply(404, {"error": f"not faked: {self.path}"})


@pytest.fixture
def hub(monkeypatch):
    handler = type("Hub", (FakeHub,), {"requests": [], "repos": {}, "files": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


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
