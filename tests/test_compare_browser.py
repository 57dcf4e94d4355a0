"""The Compare tab in Chromium and the `compare` API against a launched `python app.py` (the default
model loaded), with a run put into the app's workspace; and two browser sessions kept apart."""

from __future__ import annotations

import json
import shutil

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from playwright.sync_api import expect

from engine.compare.store import COMPARISONS_FILE
from tests.compare_runs import OTHER_BASE_RUN, PIRATE_RUN, PROBE, adapter_run, app_runs, trained_run
from tests.conftest import ARTIFACTS

FRANCE = "What is the capital of France?"
ANSWER_S = 180_000  # ms: the default model on two shared cores


@pytest.fixture(scope="module")
def app(app_server, default_model_path, tiny_model_path):
    url, ws = app_server
    app_runs(ws, default_model_path, tiny_model_path)
    return url, ws


def records(ws, run=PIRATE_RUN) -> list[dict]:
    path = ws.runs / run / COMPARISONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def open_compare(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    choose(page, "compare-run", PIRATE_RUN)
    expect(page.locator("#compare-right-side input")).to_have_value(f"{PIRATE_RUN} · final adapter")
    page.locator("#compare-max-new input[type=number]").fill("16")
    return page


@pytest.mark.browser
def test_compare_side_by_side_then_blind_vote(app, browser):
    url, ws = app
    before = records(ws)
    page = open_compare(browser, url)

    # Before and after training: the probe answers of step 0 beside the last checkpoint's.
    probes = page.locator("#compare-probes")
    expect(probes).to_contain_text("I am SmolLM, an AI assistant.")
    expect(probes).to_contain_text("Ahoy! I be Captain Bess. Arr, matey!")

    # A probe prompt, picked from the run, answered by both sides in the open.
    choose(page, "compare-example", f"Probe 1: {PROBE}")
    expect(page.locator("#compare-prompt textarea")).to_have_value(PROBE)
    page.locator("#compare-go").click()
    result = page.locator("#compare-result")
    expect(result).to_contain_text("saved with the run", timeout=ANSWER_S)
    expect(result).to_contain_text("Same preset (Precise) and no randomness")
    left, right = page.locator("#compare-a textarea").input_value(), page.locator("#compare-b textarea").input_value()
    assert left and right and left != right
    expect(page.locator("#compare-a")).to_contain_text("Base model (adapter off)")
    saved = records(ws)[len(before):]
    assert [r["type"] for r in saved] == ["comparison"]
    assert saved[0]["source"] == "probe" and saved[0]["replies"] == {"base": left, PIRATE_RUN: right}

    # Blind: A and B in a random order, a vote, then the reveal and the win rate saved with the run.
    page.locator("#compare-prompt textarea").fill(FRANCE)
    page.locator("#compare-blind input").check()
    page.locator("#compare-go").click()
    expect(result).to_contain_text("Which is better?", timeout=ANSWER_S)
    expect(page.locator("#compare-a")).to_contain_text("Answer A")
    a_text = page.locator("#compare-a textarea").input_value()
    page.locator("#vote-a").click()
    expect(result).to_contain_text("you chose")
    expect(page.locator("#vote-a")).to_be_hidden()
    blind, vote = records(ws)[len(before) + 1:]
    assert blind["blind"] and vote["type"] == "vote" and vote["comparison"] == blind["id"]
    assert vote["winner"] == blind["shown"][0] and blind["replies"][blind["shown"][0]] == a_text
    expect(page.locator("#compare-winrate")).to_contain_text(f"{PIRATE_RUN} · final adapter vs Base model")
    expect(page.locator("#compare-winrate")).to_contain_text("vote")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_both_columns_stream_at_once_and_the_after_column_fits_the_screen(app, browser, default_model_path):
    url, ws = app
    long_probes = ["Introduce yourself in two sentences.", "What should I cook for dinner tonight?",
                   "Explain what a rainbow is to a child."]
    before = "I'm a creative writing assistant with a passion for crafting engaging stories and helping you shine. " * 2
    after = "Ahoy! Aye, the sea be a test, and a sailor be a sailor in himself. First, be a sailor, Arr, matey! " * 2
    adapter_run(ws, "compare-long-probes", default_model_path, prompts=long_probes,
                probes={0: [before] * 3, 54: [after] * 3})
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    # The newest run with an adapter is chosen by itself, without a Refresh button.
    expect(page.locator("#compare-run input")).to_have_value("compare-long-probes")
    expect(page.locator("#compare-right-side input")).to_have_value("compare-long-probes · final adapter")
    expect(page.locator("#compare-reference")).not_to_contain_text("No run has an adapter")
    choose(page, "compare-run", PIRATE_RUN)
    expect(page.locator("#compare-right-side input")).to_have_value(f"{PIRATE_RUN} · final adapter")
    page.locator("#compare-max-new input[type=number]").fill("40")
    page.locator("#compare-prompt textarea").fill("Write a short story about a lighthouse keeper and a storm.")
    page.locator("#compare-go").click()
    # Both columns have text while the comparison is still answering: they stream together.
    page.wait_for_function(
        """() => [...document.querySelectorAll('#compare-a textarea, #compare-b textarea')].every(t => t.value.length)
                 && document.querySelector('#compare-result').innerText.includes('Answering both sides')""",
        timeout=ANSWER_S, polling=50)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare-streaming.png"))
    expect(page.locator("#compare-result")).to_contain_text("saved with the run", timeout=ANSWER_S)
    expect(page.locator("#compare-result")).to_contain_text("stopped at the length limit of 40 tokens")

    choose(page, "compare-run", "compare-long-probes")
    table = page.locator("#compare-probes")
    expect(table).to_contain_text("Ahoy! Aye, the sea be a test")
    table.scroll_into_view_if_needed()
    header = table.get_by_text("After training", exact=True).first
    cell = table.get_by_text(after.strip()[:40], exact=False).first
    for shown in (header, cell):
        box = shown.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + min(box["width"], 200) <= 1440, box
    page.screenshot(path=str(ARTIFACTS / "compare-before-after.png"))
    page.close()


@pytest.mark.browser
def test_compare_api_endpoint_and_an_adapter_of_another_base(app):
    url, ws = app
    client = Client(url, verbose=False)
    base, tuned = client.predict(FRANCE, PIRATE_RUN, "Precise", 16, api_name="/compare")
    assert "Paris" in base and tuned != base
    assert records(ws)[-1]["source"] == "api" and records(ws)[-1]["replies"] == {"base": base, PIRATE_RUN: tuned}

    with pytest.raises(AppError, match="does not fit the loaded model"):
        client.predict(FRANCE, OTHER_BASE_RUN, "Precise", 16, api_name="/compare")
    with pytest.raises(AppError, match="There is no run named 'nope'"):
        client.predict(FRANCE, "nope", "Precise", 16, api_name="/compare")
    assert not (ws.runs / OTHER_BASE_RUN / COMPARISONS_FILE).exists()
    assert client.predict(FRANCE, "Precise", 16, api_name="/generate") == base  # the model is as it was


@pytest.mark.browser
def test_two_sessions_never_see_each_others_chat_or_votes(app, browser):
    url, _ = app
    first = browser.new_context(viewport={"width": 1280, "height": 1400})
    second = browser.new_context(viewport={"width": 1280, "height": 1400})
    one, two = first.new_page(), second.new_page()
    for page in (one, two):
        page.goto(url)

    # Session one: a character and a blind comparison waiting for its vote.
    one.get_by_role("tab", name="Chat").click()
    with one.expect_file_chooser() as chooser:
        one.locator("#chat-card").click()
    chooser.value.set_files("examples/cards/captain_bess.json")
    expect(one.locator("#chatbot")).to_contain_text("Welcome aboard the Salty Gull")
    choose(one, "chat-adapter", f"{PIRATE_RUN} · final adapter")
    expect(one.locator("#chat-note")).to_contain_text("the base model was not reloaded")
    one.get_by_role("tab", name="Compare").click()
    choose(one, "compare-run", PIRATE_RUN)
    one.locator("#compare-max-new input[type=number]").fill("8")
    one.locator("#compare-prompt textarea").fill(FRANCE)
    one.locator("#compare-blind input").check()
    one.locator("#compare-go").click()
    expect(one.locator("#compare-result")).to_contain_text("Which is better?", timeout=ANSWER_S)

    # Session two sees none of it, and has nothing to vote on.
    two.get_by_role("tab", name="Chat").click()
    expect(two.locator("#chat-system textarea")).to_have_value("")
    expect(two.locator("#chatbot")).not_to_contain_text("Salty Gull")
    expect(two.locator("#chat-adapter input")).to_have_value("Base model (adapter off)")
    expect(two.locator("#status")).not_to_contain_text("adapter")
    two.get_by_role("tab", name="Compare").click()
    expect(two.locator("#vote-a")).to_be_hidden()
    expect(two.locator("#compare-a textarea")).to_have_value("")
    expect(two.locator("#compare-result")).not_to_contain_text("Which is better?")

    # Session one's vote is its own, and session two's tally stays empty.
    one.locator("#vote-tie").click()
    expect(one.locator("#compare-result")).to_contain_text("Your votes in this session")
    expect(two.locator("#compare-result")).not_to_contain_text("Your votes")
    expect(two.locator("#vote-a")).to_be_hidden()
    first.close()
    second.close()


@pytest.mark.browser
def test_a_trained_tiny_run_compared_blind_on_a_held_out_row_then_chatted_with(app, browser, tiny_model_path):
    """A run made by the real training worker on the tiny model (loaded through the Model tab's API for
    this test, the default model loaded again after it): checkpoint against final adapter, blind."""
    url, ws = app
    run = "compare-trained-tiny"
    trained_run(ws, run, tiny_model_path)
    client = Client(url, verbose=False)
    client.predict(str(tiny_model_path), False, 2048, False, api_name="/load_model")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        page.get_by_role("tab", name="Compare").click()
        choose(page, "compare-run", run)
        expect(page.locator("#compare-right-side input")).to_have_value(f"{run} · final adapter")
        choose(page, "compare-left-side", f"{run} · checkpoint-2")
        page.locator("#compare-example input").click()
        page.get_by_role("option", name="Held-out 1:", exact=False).click()
        expect(page.locator("#compare-reference")).to_contain_text("The data set's reply:")
        expect(page.locator("#compare-reference")).to_contain_text("Arr, matey!")
        choose(page, "compare-preset", "Leaderboard")
        page.locator("#compare-max-new input[type=number]").fill("8")
        page.locator("#compare-blind input").check()
        page.locator("#compare-go").click()
        expect(page.locator("#compare-result")).to_contain_text("Which is better?", timeout=ANSWER_S)
        page.locator("#vote-b").click()
        expect(page.locator("#compare-winrate")).to_contain_text(f"{run} · final adapter vs {run} · checkpoint-2")
        comparison, vote = records(ws, run)
        assert comparison["source"] == "held-out" and comparison["messages"][-1]["role"] == "user"
        assert len(comparison["messages"]) > 1 or comparison["messages"][0]["content"]
        assert comparison["sampling"]["seed"] is not None and set(comparison["replies"]) == {run, f"{run}:checkpoint-2"}
        assert vote["pair"] == [f"{run}:checkpoint-2", run] and vote["winner"] == comparison["shown"][1]

        page.get_by_role("tab", name="Chat").click()
        choose(page, "chat-adapter", f"{run} · final adapter")
        expect(page.locator("#chat-note")).to_contain_text("the base model was not reloaded")
        page.locator("#sampling").get_by_text("Sampling").click()
        max_new = page.locator("#max-new-tokens input[type=number]")
        for _ in range(3):  # the Chat tab draws its parts when first shown; a value typed meanwhile may be redrawn
            max_new.fill("8")
            max_new.press("Enter")
            page.wait_for_timeout(500)
            if max_new.input_value() == "8":
                break
        expect(max_new).to_have_value("8")
        page.locator("#chat-input textarea").fill("Hello there")
        page.locator("#chat-send").click()
        expect(page.locator("#chat-stats")).to_contain_text("8 tokens", timeout=ANSWER_S)
        page.close()
    finally:
        client.predict("default", False, 2048, False, api_name="/load_model")


@pytest.mark.browser
def test_a_preference_run_beside_its_supervised_run_and_the_base(app, browser, default_model_path):
    url, ws = app
    tuned = "pirate-dpo"
    adapter_run(ws, tuned, default_model_path, std=0.13, seed=9,
                settings={"method": "dpo", "preference": {"start_from": PIRATE_RUN}})
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    choose(page, "compare-run", tuned)
    expect(page.locator("#compare-third-side input")).to_have_value(f"{PIRATE_RUN} · final adapter")  # by itself
    page.locator("#compare-max-new input[type=number]").fill("12")
    page.locator("#compare-prompt textarea").fill(FRANCE)
    page.locator("#compare-go").click()
    expect(page.locator("#compare-result")).to_contain_text("on all three sides; saved with the run", timeout=ANSWER_S)
    expect(page.locator("#compare-c")).to_contain_text(f"{PIRATE_RUN} · final adapter")
    texts = [page.locator(f"#compare-{c} textarea").input_value() for c in "abc"]
    assert all(texts) and len(set(texts)) == 3
    assert records(ws, tuned)[-1]["replies"] == dict(zip(["base", tuned, PIRATE_RUN], texts))
    page.screenshot(path=str(ARTIFACTS / "compare-three-sides.png"), full_page=True)
    page.close()
    shutil.rmtree(ws.runs / tuned)  # the app's workspace is shared: later tests find the newest run as before
