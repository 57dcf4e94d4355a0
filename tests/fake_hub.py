"""A stand-in of the Hugging Face Hub on 127.0.0.1 (the Hub cannot be reached from here):
huggingface_hub itself runs unchanged and talks HTTP to it (HF_ENDPOINT), so the fake stands only at
the network boundary. It records every request, so a test can check where the token travelled."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_FAKEtokenForTestsOnly0123456789abcdef"


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


@contextmanager
def fake_hub():
    """(the handler class holding what was received, the Hub's URL), while the server runs."""
    handler = type("Hub", (FakeHub,), {"requests": [], "repos": {}, "files": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
