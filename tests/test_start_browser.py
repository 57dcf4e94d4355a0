"""The "Start here" tab in Chromium, as a first-timer walks it against a launched `python app.py` on a fresh
workspace: pick the character goal, use the example (the pirate data with Captain Bess's card), read what will
be learned with two rendered examples, see the plan in plain words, start a first taste (a few real training
steps of the default model), watch it, and land on the held-out prompts answered before and after. No expert
tab is touched. A screenshot of every step goes to artifacts/start-*.png.

The locale is a parameter: the Chinese page needs the page's language switch (another area's work); add
"zh-CN" with its words to LOCALES once it lands."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from engine.guide import TASTE_STEPS
from tests.conftest import ARTIFACTS, fresh_workspace, launched_app

pytestmark = pytest.mark.browser
SCREEN = {"width": 1440, "height": 1000}
LOCALES = {
    "en-US": {"goal": "A character who talks a certain way", "read": "Read the data", "go": "Start training",
              "summary": "learns to be Captain Barnacle Bess", "plan": "Training takes about",
              "side": "Before training", "after": "After training", "export": "Export for Ollama"},
}


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory, default_model_path):
    ws = fresh_workspace(tmp_path_factory.mktemp("start") / "workspace", default_model_path)
    with launched_app(ws) as url:
        yield url, ws


def shot(page, step: str, locale: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"start-{locale}-{step}.png"), full_page=True)


@pytest.mark.parametrize("locale", list(LOCALES))
def test_a_first_timer_goes_from_an_empty_workspace_to_the_before_and_after_view(empty_app, browser, locale):
    url, ws = empty_app
    words = LOCALES[locale]
    page = browser.new_page(viewport=SCREEN, locale=locale)
    page.goto(url)
    expect(page.get_by_role("tab", name="Start here")).to_have_attribute("aria-selected", "true", timeout=60_000)  # first
    expect(page.locator("#start-goal")).to_contain_text(words["goal"])
    shot(page, "1-goal", locale)

    page.locator("#start-goal").get_by_text(words["goal"]).click()
    page.locator("#start-read").click()
    summary = page.locator("#start-summary")
    expect(summary).to_contain_text(words["summary"], timeout=60_000)
    expect(summary).to_contain_text("108")
    expect(page.locator("#start-examples pre")).to_have_count(2)
    expect(page.locator("#start-examples pre").first).to_contain_text("Arr, matey!")
    plan = page.locator("#start-plan")
    expect(plan).to_contain_text(words["plan"], timeout=120_000)
    expect(plan).to_contain_text(f"{TASTE_STEPS} steps")
    shot(page, "2-data-and-plan", locale)

    page.locator("#start-go").click()
    progress = page.locator("#start-progress")
    expect(progress).to_contain_text("step", timeout=1_200_000)  # the worker loads, the prompts are answered first
    shot(page, "3-training", locale)

    side = page.locator("#start-side")
    # Ten real steps and the prompts answered twice: about three minutes on a quiet 2-core CPU, many more on a
    # machine shared with other jobs.
    expect(side).to_contain_text(words["side"], timeout=1_500_000)
    expect(side).to_contain_text("How do I bake bread at home?")  # a held-out prompt, never trained on
    expect(progress).to_contain_text("completed")
    expect(page.locator("#start-export")).to_contain_text(words["export"])
    side.scroll_into_view_if_needed()
    expect(side.get_by_role("columnheader").nth(2)).to_contain_text(words["after"])
    expect(side.get_by_role("columnheader").nth(2)).to_be_in_viewport()  # all three columns fit the page
    shot(page, "4-before-and-after", locale)

    page.reload()  # the run is found again, as after a restart
    expect(side).to_contain_text("How do I bake bread at home?", timeout=30_000)
    for tab in ("Model", "Chat", "Dataset", "Train", "Compare", "Export"):  # never opened on the way
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "false")
    page.close()
