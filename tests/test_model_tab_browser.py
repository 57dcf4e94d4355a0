"""The Model tab in Chromium against a launched `python app.py` on this CPU machine: 4-bit cannot be
chosen, and the form says why."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS


@pytest.mark.browser
def test_four_bit_is_shown_disabled_with_the_reason(app_server, browser):
    url, _ = app_server
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Model").click()  # the second tab, after Start here
    box = page.locator("#model-4bit")
    expect(box.locator("input[type=checkbox]")).to_be_disabled()
    expect(box).to_contain_text("4-bit needs an NVIDIA GPU; this machine has none.")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "model-tab.png"))
    page.close()
