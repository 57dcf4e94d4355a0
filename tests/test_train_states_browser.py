"""The Train tab in Chromium as a newcomer meets it: a data set saved on the Dataset tab is listed (and
chosen) on Train without a restart and after a reload; every run control is clickable only where it
can act, says why where that helps, and its message shows beside it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from engine.data.store import list_datasets
from engine.files import write_json
from engine.train import presets, runs
from tests.conftest import ARTIFACTS
from ui.train_tab import EXAMPLES

pytestmark = pytest.mark.browser
PIRATE = EXAMPLES / "pirate.jsonl"
SCREEN = {"width": 1440, "height": 900}


def choose_run(page, name: str) -> None:
    page.locator("#train-run input").click()
    page.locator("#train-run").get_by_role("option", name=name, exact=True).click()


def test_a_data_set_saved_on_the_dataset_tab_is_chosen_on_train_and_kept_after_a_reload(app_server, browser):
    url, ws = app_server
    page = browser.new_page(viewport=SCREEN)
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    dataset = page.locator("#train-dataset input")
    if not list_datasets(ws):  # (other tests of this session may have saved some)
        expect(dataset).to_have_value("example: pirate.jsonl")
    page.get_by_role("tab", name="Dataset").click()
    page.locator("#data-file input[type=file]").set_input_files(str(PIRATE))
    page.wait_for_selector("#data-report :text('108 kept')", timeout=60_000)
    page.locator("#data-name input, #data-name textarea").fill("saved-for-train")
    page.locator("#data-save").click()
    page.wait_for_selector("#data-saved :text('saved-for-train')", timeout=60_000)

    page.get_by_role("tab", name="Train").click()  # no restart, no reload: the list follows the workspace
    expect(dataset).to_have_value("saved-for-train", timeout=15_000)
    dataset.click()
    options = page.locator("#train-dataset").get_by_role("option")
    expect(options.first).to_have_attribute("aria-label", "saved-for-train")
    expect(page.locator("#train-dataset").get_by_role("option", name="example: pirate.jsonl")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train-dataset-list.png"))
    page.keyboard.press("Escape")

    page.reload()
    page.get_by_role("tab", name="Train").click()
    expect(dataset).to_have_value("saved-for-train", timeout=15_000)
    page.close()


def _stopped(ws, name: str, checkpoint: bool):
    run = runs.create_run(ws, presets.build("quick-test", str(PIRATE)), name=name)
    runs.update_status(run.path, state="stopped")
    if checkpoint:
        write_json(run.path / "checkpoints" / "checkpoint-5" / "trainer_state.json", {"global_step": 5})
    return run


def test_every_run_control_is_clickable_only_where_it_can_act(app_server, browser):
    url, ws = app_server
    _stopped(ws, "no-checkpoint", checkpoint=False)
    resumable = _stopped(ws, "resumable", checkpoint=True)
    page = browser.new_page(viewport=SCREEN)
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    start, stop, resume = page.locator("#train-start"), page.locator("#train-stop"), page.locator("#train-resume")
    rename, delete = page.locator("#train-rename"), page.locator("#train-delete")
    try:
        choose_run(page, "no-checkpoint")
        expect(page.locator("#train-progress")).to_contain_text("no-checkpoint: stopped", timeout=15_000)
        expect(stop).to_be_disabled()  # nothing runs
        expect(resume).to_be_disabled()  # no checkpoint
        expect(page.locator("#train-resume-note")).to_contain_text("'no-checkpoint' has no checkpoint to resume from")
        expect(rename).to_be_enabled()
        expect(delete).to_be_enabled()
        expect(start).to_be_enabled()

        choose_run(page, "resumable")
        expect(resume).to_be_enabled(timeout=15_000)
        expect(page.locator("#train-resume-note")).to_have_text("")
        expect(stop).to_be_disabled()

        live = runs.create_run(ws, presets.build("quick-test", str(PIRATE)), name="live")  # queued: starting
        expect(page.locator("#train-start-note")).to_contain_text(  # the next redraw sees it
            "'live' is training: a run started now waits in line at place 2", timeout=15_000)
        expect(start).to_be_enabled()
        expect(resume).to_be_disabled()  # resumable has a checkpoint, but another run trains
        choose_run(page, "live")
        expect(stop).to_be_enabled(timeout=15_000)
        for button in (resume, rename, delete):
            expect(button).to_be_disabled()
        page.screenshot(path=str(ARTIFACTS / "train-controls-while-training.png"))

        stop.click()  # its message beside the Run row, none left elsewhere
        expect(page.locator("#train-run-message")).to_contain_text("Stopping live", timeout=15_000)
        expect(page.locator("#train-start-message")).to_have_text("")
        expect(page.locator("#train-runs-message")).to_have_text("")
        runs.update_status(live.path, state="stopped")  # it never had a worker
        expect(page.locator("#train-start-note")).to_have_text("", timeout=15_000)
        page.locator("#train-runs").get_by_text("live", exact=True).first.wait_for()
        page.get_by_label("New name").fill("renamed")
        rename.click()
        expect(page.locator("#train-runs-message")).to_contain_text("Renamed live to renamed", timeout=15_000)
        expect(page.locator("#train-run-message")).to_have_text("")  # the Stopping message is gone
        page.screenshot(path=str(ARTIFACTS / "train-controls-after-rename.png"))
    finally:
        for name in ("no-checkpoint", "resumable", "live", "renamed"):
            if (ws.runs / name).exists():
                run = runs.load_run(ws, name)
                if run.live:
                    runs.update_status(run.path, state="stopped")
                runs.delete_run(ws, name)
        page.close()
    assert not resumable.path.exists()


def test_the_plan_stays_readable_while_measuring_speed(app_server, browser, tiny_model_path):
    url, _ = app_server
    page = browser.new_page(viewport=SCREEN)
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    model = page.locator("#train-model input")
    model.fill(str(tiny_model_path))
    model.press("Enter")
    dataset = page.locator("#train-dataset input")
    dataset.click()
    page.locator("#train-dataset").get_by_role("option", name="example: pirate.jsonl").click()
    plan_text = page.locator("#train-plan-text")
    page.wait_for_timeout(1000)
    expect(model).to_have_value(str(tiny_model_path))  # the lists' redraw on showing the tab kept what was typed
    page.locator("#train-measure").click()
    note = page.locator("#train-measure-note")
    expect(note).to_contain_text("Timing a few real training steps", timeout=60_000)
    expect(plan_text).to_contain_text("108 conversations")  # the plan is there at once, before any measuring
    # the progress shows on the note beside the button; nothing lies over the plan
    assert page.locator("#train-plan-text .eta-bar, #train-plan-text .progress-text").count() == 0
    plan_text.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "train-measuring.png"))
    expect(note).to_contain_text("Measured", timeout=240_000)
    expect(plan_text).to_contain_text("Time:")
    page.close()
