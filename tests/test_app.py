"""The app through its real clients: gradio_client against a launched `python app.py`, and Chromium."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.conftest import ARTIFACTS

ROOT = Path(__file__).resolve().parent.parent


def test_generate_endpoint_round_trip(app_server):
    url, _ = app_server
    client = Client(url, verbose=False)
    reply = client.predict("What is the capital of France?", "Precise", 30, api_name="/generate")
    assert "Paris" in reply


def test_generate_endpoint_reports_a_bad_preset_plainly(app_server):
    url, _ = app_server
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="Unknown preset 'Wild'"):
        client.predict("hi", "Wild", 10, api_name="/generate")


def test_bad_model_keeps_the_loaded_one(app_server):
    url, ws = app_server
    client = Client(url, verbose=False)
    (ws.root / "not-a-model").mkdir(exist_ok=True)
    with pytest.raises(AppError, match="not a model: it has no config.json"):
        client.predict(str(ws.root / "not-a-model"), False, 2048, False, api_name="/load_model")
    assert "Paris" in client.predict("What is the capital of France?", "Precise", 30, api_name="/generate")


def test_cli_generate_prints_a_streamed_reply(workspace):
    out = subprocess.run(
        [sys.executable, "-m", "engine", "generate", "--workspace", str(workspace.root), "--preset", "Precise",
         "--max-new-tokens", "20", "What is the capital of France?"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout and "tokens/s" in out.stderr


def test_cli_generate_bad_model_exits_nonzero_with_a_message(workspace):
    out = subprocess.run(
        [sys.executable, "-m", "engine", "generate", "--workspace", str(workspace.root), "--model", "??", "hi"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "not a model this app can load" in out.stderr


@pytest.mark.browser
def test_browser_chat_streams_a_reply(app_server, browser):
    url, _ = app_server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(url)
    page.get_by_text("SmolLM2-135M-Instruct").first.wait_for()
    assert "backend: transformers" in page.locator("#status").inner_text()
    page.get_by_role("tab", name="Chat").click()
    page.locator("#sampling").get_by_text("Sampling").click()
    page.locator("#preset input").click()
    page.get_by_role("option", name="Precise").click()
    page.locator("#chat-input textarea").fill("What is the capital of France? Answer, then describe the city.")
    page.locator("#chat-send").click()
    bot = page.locator("#chatbot .message.bot").last  # the assistant's bubble
    bot.wait_for(timeout=60_000)
    seen = []  # the bubble's text as it streams in
    stats = page.locator("#chat-stats")
    deadline = time.time() + 180
    while "tokens/s" not in stats.inner_text() and time.time() < deadline:
        text = bot.inner_text().strip()
        if text and text != "Loading content" and (not seen or seen[-1] != text):
            seen.append(text)
        time.sleep(0.1)
    final = bot.inner_text().strip()
    assert "Paris" in final
    assert len(seen) >= 2 and all(final.startswith(t) for t in seen), seen  # grew piece by piece
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    page.close()
