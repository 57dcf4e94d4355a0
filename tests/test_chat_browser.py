"""The Chat tab's additions in Chromium against a launched `python app.py` (the default model
loaded): answering with a run's adapter and back with the base, a character card, and chat
export and import; bad files leave everything as it was; after Regenerate, the better reply marked."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.compare_runs import OTHER_BASE_RUN, PIRATE_RUN, app_runs
from tests.conftest import ARTIFACTS

FRANCE = "What is the capital of France?"
ANSWER_S = 180_000  # ms: the default model on two shared cores
BASE = "Base model (adapter off)"


@pytest.fixture(scope="module")
def app(app_server, default_model_path, tiny_model_path):
    url, ws = app_server
    app_runs(ws, default_model_path, tiny_model_path)
    return url, ws


def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def open_chat(browser, url, **context):
    page = browser.new_page(viewport={"width": 1440, "height": 900}, **context)
    page.goto(url)
    page.get_by_role("tab", name="Chat").click()
    return page


def upload(page, button: str, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(f"#{button}").click()
    chooser.value.set_files(str(path))


def answer(page) -> str:
    expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=ANSWER_S)
    return page.locator("#chatbot .message.bot:not(.pending)").last.inner_text().strip()


@pytest.mark.browser
def test_chat_with_a_runs_adapter_then_the_base_without_reloading(app, browser):
    url, _ = app
    base, tuned = Client(url, verbose=False).predict(FRANCE, PIRATE_RUN, "Precise", 16, api_name="/compare")
    assert tuned != base
    page = open_chat(browser, url)
    page.locator("#sampling").get_by_text("Sampling").click()
    choose(page, "preset", "Precise")
    max_new = page.locator("#max-new-tokens input[type=number]")
    expect(page.locator("#temperature input[type=number]")).to_have_value("0")  # the preset's values are in
    max_new.fill("16")
    max_new.press("Enter")
    expect(max_new).to_have_value("16")

    choose(page, "chat-adapter", f"{PIRATE_RUN} · final adapter")
    expect(page.locator("#chat-note")).to_contain_text("the base model was not reloaded")
    page.locator("#chat-input textarea").fill(FRANCE)
    page.locator("#chat-send").click()
    assert answer(page) == tuned

    choose(page, "chat-adapter", BASE)
    expect(page.locator("#chat-note")).to_contain_text("Answering with the base model, adapters off")
    page.locator("#chat-clear").click()
    expect(page.locator("#chatbot .message.bot")).to_have_count(0)
    page.locator("#chat-input textarea").fill(FRANCE)
    page.locator("#chat-send").click()
    assert answer(page) == base

    # An adapter trained on another base model: a clear message, and the choice stays as it was.
    choose(page, "chat-adapter", f"{OTHER_BASE_RUN} · final adapter")
    expect(page.locator("#chat-note")).to_contain_text("does not fit the loaded model")
    expect(page.locator("#chat-adapter input")).to_have_value(BASE)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-adapter.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_character_card_then_chat_export_and_import(app, browser, tmp_path):
    url, _ = app
    page = open_chat(browser, url, accept_downloads=True)
    system, character, bot = page.locator("#chat-system textarea"), page.locator("#chat-character textarea"), page.locator("#chatbot")

    upload(page, "chat-card", "examples/cards/captain_bess.png")
    expect(character).to_have_value("Captain Barnacle Bess", timeout=30_000)  # two shared cores: may take seconds
    assert system.input_value().startswith("You are Captain Barnacle Bess.\nCaptain Barnacle Bess is the weathered")
    expect(bot).to_contain_text("Ahoy, User! Welcome aboard the Salty Gull.")

    # Not cards: a PNG without a `chara` chunk and JSON of another kind. Nothing changes.
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    upload(page, "chat-card", tmp_path / "plain.png")
    expect(page.get_by_text("is a PNG without a character card in it")).to_be_visible()
    (tmp_path / "notes.json").write_text(json.dumps({"title": "shopping", "items": ["eggs"]}))
    upload(page, "chat-card", tmp_path / "notes.json")
    expect(page.get_by_text("This is not a character card (fields seen: title, items)")).to_be_visible()
    expect(character).to_have_value("Captain Barnacle Bess")
    assert system.input_value().startswith("You are Captain Barnacle Bess.")

    # Export: the greeting, the system prompt and the name, as JSON.
    page.locator("#chat-export").click()
    link = page.locator("#chat-export-file a").first
    with page.expect_download() as download:
        link.click()
    saved = json.loads(open(download.value.path()).read())
    assert saved["character"] == "Captain Barnacle Bess" and saved["system"] == system.input_value()
    assert saved["messages"] == [{"role": "assistant", "content": bot.locator(".message.bot").first.inner_text().strip()}]

    # Import puts it back after a clear; a file of the wrong shape changes nothing.
    saved["messages"].append({"role": "user", "content": "Where are we sailing?"})
    (tmp_path / "chat.json").write_text(json.dumps(saved))
    page.locator("#chat-system textarea").fill("")
    page.locator("#chat-clear").click()
    upload(page, "chat-import", tmp_path / "chat.json")
    expect(bot).to_contain_text("Where are we sailing?")
    expect(system).to_have_value(saved["system"])
    (tmp_path / "wrong.json").write_text(json.dumps({"messages": [{"role": "narrator", "content": "Meanwhile"}]}))
    upload(page, "chat-import", tmp_path / "wrong.json")
    expect(page.get_by_text("Message 1 has the role 'narrator'")).to_be_visible()
    expect(bot).to_contain_text("Where are we sailing?")
    expect(system).to_have_value(saved["system"])
    page.close()


@pytest.mark.browser
def test_stop_ends_a_long_reply_at_once_and_the_next_message_is_answered(app, browser):
    url, _ = app
    page = open_chat(browser, url)
    page.locator("#chat-input textarea").fill("Write a very long story about the sea, with many chapters.")
    page.locator("#chat-send").click()
    reply = page.locator("#chatbot .message.bot").last
    expect(reply).to_contain_text(" ", timeout=ANSWER_S)  # a few words streamed
    page.locator("#chat-stop").click()
    page.wait_for_timeout(1500)
    stopped = reply.inner_text()
    page.wait_for_timeout(3000)
    assert stopped and reply.inner_text() == stopped  # what was said stays; nothing streams after Stop
    expect(page.locator("#chat-stats")).to_contain_text("stopped by you")  # it says it was stopped

    page.locator("#sampling").get_by_text("Sampling").click()
    choose(page, "preset", "Precise")
    page.locator("#chat-clear").click()
    expect(page.locator("#chat-stats")).not_to_contain_text("stopped by you")
    page.locator("#chat-input textarea").fill(FRANCE)
    page.locator("#chat-send").click()
    assert "Paris" in answer(page)  # the model was free again
    page.close()


def precise(page, max_new_tokens: int) -> None:
    page.locator("#sampling").get_by_text("Sampling").click()
    choose(page, "preset", "Precise")
    max_new = page.locator("#max-new-tokens input[type=number]")
    expect(page.locator("#temperature input[type=number]")).to_have_value("0")
    max_new.fill(str(max_new_tokens))
    max_new.press("Enter")
    expect(max_new).to_have_value(str(max_new_tokens))
    page.locator("#sampling").get_by_text("Sampling", exact=True).click()  # closed again


def say(page, text: str) -> str:
    page.locator("#chat-input textarea").fill(text)
    page.locator("#chat-send").click()
    return answer(page)


@pytest.mark.browser
def test_a_reply_cut_at_the_length_limit_says_so_and_continue_extends_it(app_server, browser):
    url, _ = app_server
    page = open_chat(browser, url)
    cut, more = page.locator("#chat-cut"), page.locator("#chat-continue")
    precise(page, 8)
    first = say(page, "Tell me a long story about the sea.")
    expect(cut).to_contain_text("stopped at the length limit of 8 tokens")
    expect(more).to_be_visible()
    expect(page.locator("#chat-stats")).not_to_contain_text("finished:")
    page.screenshot(path=str(ARTIFACTS / "chat-cut.png"))

    more.click()
    bots = page.locator("#chatbot .message.bot:not(.pending)")
    expect(bots.first).not_to_have_text(first, timeout=ANSWER_S)
    expect(page.locator("#chat-stats")).not_to_contain_text("processing", timeout=ANSWER_S)  # the reply is complete
    expect(cut).to_contain_text("stopped at the length limit of 8 tokens")
    expect(bots).to_have_count(1)  # the same message, longer
    longer = bots.first.inner_text().strip()
    assert longer.startswith(first) and len(longer) > len(first)
    page.close()


def seeded(page, seed: int, max_new_tokens: int | None = None) -> None:
    """The Leaderboard preset (sampled) with a fixed seed: a regeneration with another seed answers differently."""
    page.locator("#sampling").get_by_text("Sampling", exact=True).click()
    if max_new_tokens:
        max_new = page.locator("#max-new-tokens input[type=number]")
        max_new.fill(str(max_new_tokens))
        max_new.press("Enter")
    page.locator("#sampling").get_by_label("Seed").fill(str(seed))
    page.locator("#sampling").get_by_text("Sampling", exact=True).click()


@pytest.mark.browser
def test_after_regenerate_the_better_reply_is_marked_and_saved_as_a_pair(app_server, browser):
    url, ws = app_server
    page = open_chat(browser, url)
    row = page.locator("#chat-choice")
    seeded(page, 1, max_new_tokens=12)
    first = say(page, "Tell me a story about the sea.")
    expect(row).to_be_hidden()  # one reply: nothing to choose between

    seeded(page, 2)
    page.get_by_role("button", name="Regenerate").click()
    expect(row).to_be_visible(timeout=ANSWER_S)
    second = answer(page)
    assert second != first
    expect(page.locator("#chat-choice-question")).to_contain_text(first.splitlines()[0])
    page.screenshot(path=str(ARTIFACTS / "chat-choice.png"))
    page.locator("#chat-earlier-better").click()
    expect(page.locator("#chat-note")).to_contain_text("Saved the earlier reply as better")
    expect(row).to_be_hidden()
    [saved] = [json.loads(line) for line in (ws.root / "chat-choices.jsonl").read_text().splitlines()]
    assert saved["prompt"] == [{"role": "user", "content": "Tell me a story about the sea."}]
    # The page shows the replies rendered as Markdown: their first lines are compared with what was saved.
    assert first.splitlines()[0] in saved["chosen"][0]["content"]
    assert second.splitlines()[0] in saved["rejected"][0]["content"]
    page.close()


@pytest.mark.browser
def test_the_chat_and_system_prompt_survive_a_reload(app_server, browser):
    url, _ = app_server
    page = open_chat(browser, url)
    page.locator("#chat-system textarea").fill("You are a cheerful pirate.")
    precise(page, 8)
    reply = say(page, FRANCE)

    page.reload()
    page.get_by_role("tab", name="Chat").click()
    expect(page.locator("#chat-system textarea")).to_have_value("You are a cheerful pirate.")
    expect(page.locator("#chatbot .message.user")).to_have_text(FRANCE)
    expect(page.locator("#chatbot .message.bot:not(.pending)")).to_have_text(reply)
    page.locator("#sampling").get_by_text("Sampling", exact=True).click()
    expect(page.locator("#preset input")).to_have_value("Precise")
    page.screenshot(path=str(ARTIFACTS / "chat-after-reload.png"))

    other = browser.new_page(viewport={"width": 1440, "height": 900})  # another browser keeps its own chat
    other.goto(url)
    other.get_by_role("tab", name="Chat").click()
    expect(other.locator("#chat-system textarea")).to_have_value("")
    expect(other.locator("#chatbot .message")).to_have_count(0)
    other.close()
    page.close()


@pytest.mark.browser
def test_a_card_over_a_conversation_asks_before_replacing_it(app_server, browser):
    url, _ = app_server
    page = open_chat(browser, url)
    system, confirm = page.locator("#chat-system textarea"), page.locator("#chat-confirm")
    system.fill("Be brief.")
    precise(page, 8)
    reply = say(page, FRANCE)

    upload(page, "chat-card", "examples/cards/captain_bess.png")
    expect(confirm).to_contain_text("Replace the current conversation with the chat with Captain Barnacle Bess?")
    page.screenshot(path=str(ARTIFACTS / "chat-card-confirm.png"))
    page.locator("#chat-keep").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#chat-note")).to_contain_text("Kept the current conversation")
    expect(system).to_have_value("Be brief.")
    expect(page.locator("#chatbot .message.bot:not(.pending)")).to_have_text(reply)

    upload(page, "chat-card", "examples/cards/captain_bess.png")
    page.locator("#chat-replace").click()
    expect(page.locator("#chat-character textarea")).to_have_value("Captain Barnacle Bess")
    expect(page.locator("#chatbot")).to_contain_text("Ahoy, User! Welcome aboard the Salty Gull.")
    expect(page.locator("#chatbot .message.user")).to_have_count(0)
    expect(confirm).to_be_hidden()
    page.close()


@pytest.mark.browser
def test_a_cards_lorebook_is_used_in_the_chat_and_after_a_reload(app_server, browser):
    url, _ = app_server
    page = open_chat(browser, url)
    upload(page, "chat-card", "tests/data/card_v3_archivist.json")
    expect(page.locator("#chat-note")).to_contain_text("lorebook 'Eldoria' (4 entries) is used in this chat",
                                                        timeout=30_000)
    precise(page, 8)
    say(page, "Tell me about the kingdom.")
    expect(page.locator("#chat-stats")).to_contain_text("Lorebook entries in this reply's prompt: Tone, The kingdom.")
    page.screenshot(path=str(ARTIFACTS / "chat-lorebook.png"), full_page=True)

    page.reload()  # the lorebook is kept in the browser with the chat
    page.get_by_role("tab", name="Chat").click()
    expect(page.locator("#chat-character textarea")).to_have_value("Archivist Wren", timeout=30_000)
    say(page, "Show me the old maps.")
    expect(page.locator("#chat-stats")).to_contain_text("Lorebook entries in this reply's prompt: Tone, Old maps.")
    page.close()
