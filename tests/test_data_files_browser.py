"""The Dataset tab in Chromium on the second wave's files: a GBK Chinese table (its encoding named, its
text rendered), a V3 character card with a lorebook (the report says what became rows and what stayed
context), a Git LFS pointer (what it is and what to do); and the preference, KTO, message-tree and
image files (each detected with its evidence, what was dropped and why, the text-only rows on request)."""

from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS
from tests.test_dataset_browser import upload

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.browser
def test_dataset_tab_names_encodings_cards_and_pointers(app_server, browser):
    url, _ = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    page.goto(url)
    page.get_by_role("tab", name="Dataset").click()

    upload(page, DATA / "faq_gbk.csv")
    page.wait_for_selector("#data-report :text('Read as gb18030 (GBK) Chinese text.')", timeout=60_000)
    page.wait_for_selector("#data-rendered :text('北京著名的景点有故宫')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "dataset-gbk.png"), full_page=True)

    upload(page, DATA / "card_v3_archivist.json")
    page.wait_for_selector("#data-report :text('2 example dialogues')", timeout=60_000)
    report = page.locator("#data-report").inner_text()
    assert "<START>" in report and "Its lorebook 'Eldoria' with 4 entries" in report and "never as training rows" in report
    page.screenshot(path=str(ARTIFACTS / "dataset-card-lorebook.png"), full_page=True)

    upload(page, DATA / "lfs_pointer.jsonl")
    page.wait_for_selector("#data-report :text('is a Git LFS pointer, not the data')", timeout=60_000)
    assert "git lfs pull" in page.locator("#data-report").inner_text()
    page.screenshot(path=str(ARTIFACTS / "dataset-lfs.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_dataset_tab_explains_preference_kto_tree_and_image_files(app_server, browser):
    url, _ = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    page.goto(url)
    page.get_by_role("tab", name="Dataset").click()
    report, detected = page.locator("#data-report"), page.locator("#data-detected")

    upload(page, DATA / "hh_rlhf.jsonl")  # Human:/Assistant: transcripts as chosen and rejected
    page.wait_for_selector("#data-detected :text('preference data')", timeout=60_000)
    assert "Human:/Assistant: transcripts" in detected.inner_text()
    text = report.inner_text()
    assert "supervised training uses the chosen replies" in text and "an empty final reply" in text  # the pair whose chosen reply is empty, dropped with its reason
    page.screenshot(path=str(ARTIFACTS / "dataset-preference.png"), full_page=True)

    upload(page, DATA / "kto_mix.jsonl")
    page.wait_for_selector("#data-detected :text('KTO data')", timeout=60_000)
    assert "an undesirable reply (kept for preference training only)" in report.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dataset-kto.png"), full_page=True)

    upload(page, DATA / "oasst_trees.jsonl")
    page.wait_for_selector("#data-detected :text('ranked replies')", timeout=60_000)
    assert "message tree" in detected.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dataset-tree.png"), full_page=True)

    upload(page, DATA / "llava_mix.json")  # three of five rows need an image
    page.wait_for_selector("#data-detected :text('this app trains text models')", timeout=60_000)
    assert "needs an image" in report.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dataset-images.png"), full_page=True)
    page.get_by_label("Use the text-only rows").check()  # the person's choice: the two rows without an image
    page.locator("#data-apply").click()
    page.wait_for_selector("#data-report :text('5 in, 2 kept, 3 dropped')", timeout=60_000)
    page.close()
