"""The Dataset tab in Chromium against a launched app: upload, report, preview with trained tokens
marked, histogram, save; an unknown shape mapped by hand; a broken file that leaves the app up."""

import json
import random
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"


def upload(page, path) -> None:
    clear = page.locator("#data-file button[aria-label='Clear']")
    if clear.count():  # the old file's events finish before the next upload
        clear.first.click()
        page.wait_for_selector("#data-detected :text('Upload a file to begin.')", timeout=60_000)
    page.locator("#data-file input[type=file]").set_input_files(str(path))


def choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


@pytest.mark.browser
def test_dataset_tab_upload_preview_save_and_bad_files(app_server, browser, tmp_path):
    url, ws = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    page.goto(url)
    page.get_by_role("tab", name="Dataset").click()

    upload(page, EXAMPLES / "pirate.jsonl")
    page.wait_for_selector("#data-report :text('108 in · 108 kept · 0 dropped')", timeout=60_000)
    assert "messages" in page.locator("#data-detected").inner_text()
    trained = page.locator("#data-rendered pre .trained").first
    trained.wait_for(timeout=60_000)
    assert trained.inner_text().endswith("Arr, matey!<|im_end|>")
    page.wait_for_selector("#data-stats :text('per epoch')", timeout=60_000)
    page.wait_for_selector("#data-histogram svg .mark-rect path", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-pirate.png"), full_page=True)

    page.locator("#data-name input, #data-name textarea").fill("pirate-ui")
    page.locator("#data-save").click()
    page.wait_for_selector("#data-saved :text('Saved 108 rows')", timeout=60_000)
    assert json.loads((ws.datasets / "pirate-ui" / "meta.json").read_text())["counts"]["rows_kept"] == 108
    assert "pirate-ui" in page.locator("#data-saved-list").inner_text()

    odd = tmp_path / "odd.csv"
    odd.write_text("q,a,notes\nWhat do cats eat?,Mostly meat and fish.,x\nWhy is grass green?,Chlorophyll.,y\n")
    upload(page, odd)
    page.wait_for_selector("#data-report :text('Columns seen: q, a, notes')", timeout=60_000)
    choose(page, "#data-format", "pairs")
    page.wait_for_selector("#data-report :text('choose the column for: prompt')", timeout=60_000)
    choose(page, "#map-prompt", "q")
    choose(page, "#map-response", "a")
    page.locator("#data-apply").click()
    page.wait_for_selector("#data-report :text('2 in · 2 kept')", timeout=60_000)
    page.wait_for_selector("#data-rendered :text('Mostly meat and fish.')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-mapped.png"), full_page=True)

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(random.Random(3).randbytes(4000))
    upload(page, garbage)
    page.wait_for_selector("#data-report :text(\"This file can't be used\")", timeout=60_000)
    assert "binary data" in page.locator("#data-report").inner_text()
    upload(page, EXAMPLES / "alpaca_sample.json")
    page.wait_for_selector("#data-report :text('12 in · 12 kept')", timeout=60_000)
    page.close()
