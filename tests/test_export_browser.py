"""The Export tab in Chromium (1440x900) against a launched `python app.py --no-model` whose workspace
holds a run with an adapter: export, download the zip through its link, a refusal that keeps the
report, a GGUF downloaded as it is, formats this machine cannot make greyed out, and the run list
following the workspace."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest
from export_runs import make_run
from playwright.sync_api import expect

from engine.hardware import detect
from tests.conftest import ARTIFACTS, launched_app

EXPORT_S = 180_000  # ms: writing and verifying the tiny model's adapter on two shared cores


@pytest.fixture(scope="module")
def app(new_workspace, tiny_model_path):
    ws = new_workspace("export-browser", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    with launched_app(ws, "--no-model") as url:
        yield url, ws


@pytest.mark.browser
def test_export_download_refusal_and_the_run_list(app, browser, tmp_path):
    url, ws = app
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("tab", name="Export").click()
    expect(page.locator("#export-run input")).to_have_value("tiny", timeout=30_000)  # several tabs load at once
    if not detect().can_4bit:
        blocked = page.locator("#export-unavailable")
        expect(blocked).to_contain_text("Needs an NVIDIA GPU with bitsandbytes")
        expect(blocked.get_by_label("Merged, 4-bit (bitsandbytes)")).to_be_disabled()
        expect(page.locator("#export-formats")).not_to_contain_text("Merged, 4-bit")

    # Export the adapter (ticked by default): the verdict beside the button, the download below.
    page.locator("#export-go").click()
    message, report = page.locator("#export-message"), page.locator("#export-report")
    expect(message).to_contain_text("Exported: adapter passed", timeout=EXPORT_S)
    expect(report).to_contain_text("Verification of adapter: PASSED")
    expect(page.locator("#export-download-choice input")).to_have_value(re.compile(r"^LoRA adapter \("))
    expect(page.locator("#export-steps")).to_contain_text("unzip tiny-adapter.zip")
    page.locator("#export-zip").click()
    link = page.locator("#export-files a[download='tiny-adapter.zip']")
    expect(link).to_be_visible(timeout=60_000)
    page.locator("#export-files").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "export_download.png"))
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = set(archive.namelist())
        assert archive.read("tiny-adapter/adapter_config.json") == (
            ws.runs / "tiny" / "exports" / "adapter" / "adapter_config.json").read_bytes()
    assert saved.name == "tiny-adapter.zip" and "tiny-adapter/adapter_model.safetensors" in names

    # A refusal (nothing ticked) is said beside the button; the earlier report stays.
    page.locator("#export-formats").get_by_label("LoRA adapter").uncheck()
    page.locator("#export-go").click()
    expect(message).to_contain_text("Tick at least one format.")
    expect(report).to_contain_text("Verification of adapter: PASSED")
    page.locator("#export-go").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "export_refused.png"))

    # A GGUF: the file and its Modelfile download as they are, with the Ollama steps beside them.
    page.locator("#export-formats").get_by_label("GGUF f16").check()
    page.locator("#export-go").click()
    expect(message).to_contain_text("Exported: gguf-f16 passed", timeout=EXPORT_S)
    expect(page.locator("#export-steps")).to_contain_text("ollama create tiny -f Modelfile")
    gguf_link = page.locator("#export-files a[download='tiny-f16.gguf']")
    expect(gguf_link).to_be_visible()
    expect(page.locator("#export-files a[download='Modelfile']")).to_be_visible()
    page.locator("#export-steps").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "export_gguf.png"))
    with page.expect_download() as download:
        gguf_link.click()
    assert Path(download.value.path()).read_bytes() == (
        ws.runs / "tiny" / "exports" / "gguf-f16" / "tiny-f16.gguf").read_bytes()

    # A run that appears later is listed when the tab is shown again; the choice made stays.
    shutil.copytree(ws.runs / "tiny", ws.runs / "tiny-later", ignore=shutil.ignore_patterns("exports"))
    (ws.runs / "tiny-later" / "adapter").touch()
    page.get_by_role("tab", name="Model").click()
    page.get_by_role("tab", name="Export").click()
    page.locator("#export-run input").click()
    expect(page.get_by_role("option", name="tiny-later", exact=True)).to_be_visible()
    expect(page.locator("#export-run input")).to_have_value("tiny")
    page.close()
