"""The Dataset tab in Chromium against a launched app: upload, report, preview with trained tokens
marked, histogram, save; an unknown shape mapped by hand; a broken file that leaves the app up; Save
off for a file that cannot be used; paging through every example; a failed save that keeps the list;
the list following the workspace."""

import json
import random
from pathlib import Path

import pytest
from playwright.sync_api import expect

from engine.data.store import import_file
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
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Dataset").click()

    upload(page, EXAMPLES / "pirate.jsonl")
    page.wait_for_selector("#data-report :text('Lines: 108 in, 108 kept, 0 dropped')", timeout=60_000)
    assert "messages" in page.locator("#data-detected").inner_text()
    trained = page.locator("#data-rendered pre .trained").first
    trained.wait_for(timeout=60_000)
    assert trained.inner_text().endswith("Arr, matey!<|im_end|>")
    page.wait_for_selector("#data-stats :text('per epoch')", timeout=60_000)
    page.wait_for_selector("#data-histogram svg .mark-rect path", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-pirate.png"), full_page=True)
    page.locator("#data-histogram").screenshot(path=str(ARTIFACTS / "dataset-histogram.png"))

    page.locator("#data-name input, #data-name textarea").fill("pirate-ui")
    page.locator("#data-save").click()
    page.wait_for_selector("#data-saved :text('Saved 108 rows')", timeout=60_000)
    assert json.loads((ws.datasets / "pirate-ui" / "meta.json").read_text())["counts"]["rows_kept"] == 108
    expect(page.locator("#data-saved-list")).to_contain_text("pirate-ui", timeout=30_000)

    odd = tmp_path / "odd.csv"
    odd.write_text("q,a,notes\nWhat do cats eat?,Mostly meat and fish.,x\nWhy is grass green?,Chlorophyll.,y\n")
    upload(page, odd)
    page.wait_for_selector("#data-report :text('Columns seen: q, a, notes')", timeout=60_000)
    choose(page, "#data-format", "Prompt and reply")  # the title shows; the handlers get its id, pairs
    page.wait_for_selector("#data-report :text('choose the column for: prompt')", timeout=60_000)
    choose(page, "#map-prompt", "q")
    choose(page, "#map-response", "a")
    page.locator("#data-apply").click()
    page.wait_for_selector("#data-report :text('Lines: 2 in, 2 kept')", timeout=60_000)
    page.wait_for_selector("#data-rendered :text('Mostly meat and fish.')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-mapped.png"), full_page=True)

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(random.Random(3).randbytes(4000))
    upload(page, garbage)
    page.wait_for_selector("#data-report :text(\"This file can't be used\")", timeout=60_000)
    assert "binary data" in page.locator("#data-report").inner_text()
    upload(page, EXAMPLES / "alpaca_sample.json")
    page.wait_for_selector("#data-report :text('Rows: 12 in, 12 kept')", timeout=60_000)
    choose(page, "#data-example", "pirate.jsonl")  # one source on the page: the uploaded file is let go
    page.wait_for_selector("#data-report :text('Lines: 108 in, 108 kept')", timeout=60_000)
    assert page.locator("#data-file :text('alpaca_sample.json')").count() == 0
    assert "Upload a file" not in page.locator("#data-detected").inner_text()
    page.close()


@pytest.mark.browser
def test_save_follows_the_file_pages_reach_every_example_and_a_failed_save_keeps_the_list(app_server, browser, tmp_path):
    url, ws = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Dataset").click()
    save = page.locator("#data-save")
    assert save.is_disabled() and "Upload a file" in page.locator("#data-saved").inner_text()

    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(random.Random(5).randbytes(4000))
    upload(page, garbage)
    page.wait_for_selector("#data-saved :text(\"can't be used as it is\")", timeout=60_000)
    assert save.is_disabled()
    page.locator("#data-save").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dataset-save-off.png"))

    upload(page, EXAMPLES / "pirate.jsonl")
    page.wait_for_selector("#data-report :text('Lines: 108 in, 108 kept')", timeout=60_000)
    page.wait_for_selector("#data-save:not([disabled])", timeout=30_000)
    assert page.locator("#data-saved").inner_text().strip() == ""
    page.wait_for_selector("#data-page :text('Showing 1–10 of 108 examples')", timeout=60_000)
    for start in range(11, 102, 10):  # a click while the last page is drawn is ignored, so one at a time
        page.locator("#data-later").click()
        page.wait_for_selector(f"#data-page :text('Showing {start}–{min(start + 9, 108)} of 108 examples')",
                               timeout=60_000)
    page.locator("#data-examples").get_by_text("How much water should I drink?", exact=True).click()
    page.wait_for_selector("#data-rendered :text('Example 107 of 108, from line 107')", timeout=60_000)
    assert "How much water should I drink?" in page.locator("#data-rendered").inner_text()
    page.locator("#data-examples").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dataset-pages.png"))

    import_file(ws, "saved-elsewhere", EXAMPLES / "pirate.jsonl")  # as the CLI would
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("tab", name="Dataset").click()
    expect(page.locator("#data-saved-list")).to_contain_text("saved-elsewhere", timeout=30_000)
    page.locator("#data-name input, #data-name textarea").fill("saved-elsewhere")
    save.click()
    page.wait_for_selector("#data-saved :text('Not saved.')", timeout=60_000)
    assert "already exists" in page.locator("#data-saved").inner_text()
    listed = page.locator("#data-saved-list")
    assert "saved-elsewhere" in listed.inner_text() and listed.get_by_text("Error").count() == 0
    page.locator("#data-save").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dataset-save-refused.png"))
    page.close()
