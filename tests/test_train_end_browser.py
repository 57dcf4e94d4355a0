"""The end of a run in Chromium against a launched `python app.py` (the default model loaded): a
finished run shows its verdict (the loss against the chart's range, the probes, the looping phrase)
and the next steps as buttons, and "Compare with the base model" lands on Compare with that run.

Training the default model for real takes minutes here, so the run is a stand-in: a real adapter of
the default model (tests/compare_runs.adapter_run) with the walk-through's records written in the run
folder's own formats: 54 steps whose loss falls from 3.9 and levels off near 2.0, and its probe answers
before training and at the end."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from engine.train.runs import EventLog
from tests.compare_runs import adapter_run
from tests.conftest import ARTIFACTS

RUN = "quick-test-pirate-finished"
PROMPT = "Introduce yourself in two sentences."
BEFORE = "I'm a creative writing assistant with a passion for crafting engaging stories."
AFTER = "Ahoy! Aye, matey! Arr, matey! Arr, matey! Arr, matey!"


@pytest.fixture(scope="module")
def finished(app_server, default_model_path):
    url, ws = app_server
    if not (ws.runs / RUN).exists():
        adapter_run(ws, RUN, default_model_path, std=0.13, prompts=[PROMPT], probes={0: [BEFORE], 54: [AFTER]})
        log = EventLog(ws.runs / RUN)
        for step in range(1, 55):
            loss = max(1.96, 3.9 - 0.05 * step)
            log.write("step", step=step, max_steps=54, epoch=step / 27, loss=loss, learning_rate=3e-4 * (1 - step / 54),
                      tokens_per_s=95.0, memory_gb=5.3, peak_memory_gb=5.6)
    return url, ws


@pytest.mark.browser
def test_a_finished_run_shows_its_verdict_and_compare_is_one_click_away(finished, browser):
    url, _ = finished
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"{RUN}: completed", timeout=60_000)  # the newest run, shown on its own
    expect(progress).to_contain_text("How it went")
    expect(progress).to_contain_text("The loss ended at 1.96")
    expect(progress).to_contain_text("still high")
    expect(progress).to_contain_text("changed from the untrained model's for 1 of 1 prompts")
    expect(progress).to_contain_text('repeats "Arr, matey!" over and over')
    steps = page.locator("#train-next")
    for label in ("Compare with the base model", "Chat with it", "Export it"):
        expect(steps.get_by_role("button", name=label)).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    progress.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-end-verdict.png"))

    page.locator("#train-next-compare").click()
    expect(page.get_by_role("tab", name="Compare")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#compare-run input")).to_have_value(RUN)  # the run just finished, not another
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "train-end-compare.png"))
    page.close()


@pytest.mark.browser
def test_the_plan_gives_a_time_before_any_measuring(finished, browser):
    """The plan gives a time before any measuring (the stated estimate, or an earlier run's speed), and
    the Quick test's help gives its measured time."""
    url, _ = finished
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    expect(page.get_by_text("Measured on a 2-core CPU")).to_be_visible()
    page.locator("#train-plan").click()
    plan = page.locator("#train-plan-text")
    expect(plan).to_contain_text("Time: about", timeout=120_000)
    # The app's workspace is shared with the other browser tests: where one of them trained a run first, the
    # time comes from that run's speed; else it is the stated estimate. Either way, before any measuring.
    expect(plan).to_contain_text(re.compile(r"an estimate: no earlier run here to time it by|\(from run "))
    plan.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-end-plan-time.png"))
    page.close()
