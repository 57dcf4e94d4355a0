"""The page in Chinese and English in Chromium against a launched `python app.py`: the browser's locale
picks the language, every tab is shown (a screenshot of each), the translated parts of a Chinese page
hold no English word but names, and the in-page switch changes both the labels and what the server
answers, keeping what the person typed."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS

TABS = {"start": ("Start here", "从这里开始"), "model": ("Model", "模型"), "chat": ("Chat", "对话"), "dataset": ("Dataset", "数据集"),
        "train": ("Train", "训练"), "compare": ("Compare", "对比"), "export": ("Export", "导出")}
# Names that stay as they are in a Chinese page.
NAMES = {"LoRA", "Workbench", "QLoRA", "GGUF", "Ollama", "Hugging", "Face", "Hub", "id", "owner", "name", "config",
         "json", "unsloth", "Qwen3", "8B", "bf16", "GiB", "cpu", "cuda", "transformers", "peft", "token", "CPU",
         "English", "bit", "API", "Gradio", "NVIDIA", "GPU", "bitsandbytes", "pip", "install", "default", "offline",
         "Instruct", "DPO", "KTO", "ORPO", "SillyTavern", "OpenAI", "Modelfile", "zip"}
# Each tab's parts that hold no English in a Chinese page (of a table, its header: the rows hold the data
# and the names other tests gave their runs and data sets; the probe grid's header is its prompts). Still English: the
# engine's longer reports (plans, exports, data checks) where their strings are not in the table yet.
TRANSLATED = {
    "model": ["#tabs [role=tablist]", "#status", "#model-choice", "#model-4bit", "#model-load", "#model-unload"],
    "chat": ["#chat-character", "#chat-system", "#chat-send", "#chat-stop", "#chat-clear", "#sampling"],
    "dataset": ["#data-file", "#data-format", "#data-name", "#data-save", "#data-saved-list thead"],
    "train": ["#train-model", "#train-dataset", "#train-preset", "#train-plan", "#train-start", "#train-run",
              "#train-stop", "#train-resume", "#train-runs thead", "#train-delete"],
    "compare": ["#compare-run", "#compare-left-side", "#compare-prompt", "#compare-go", "#compare-blind",
                "#compare-probes thead"],
    "export": ["#export-run", "#export-formats", "#export-go"],
}


def _english_words(text: str) -> set[str]:
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9]+", text))
    return {w for w in words if w not in NAMES and not re.search(r"\d", w)}


@pytest.mark.browser
@pytest.mark.parametrize("locale, index", [("en-US", 0), ("zh-CN", 1)])
def test_every_tab_in_the_browsers_language(app_server, browser, locale, index):
    url, _ = app_server
    page = browser.new_page(locale=locale, viewport={"width": 1440, "height": 1000})
    page.goto(url)
    expect(page.locator("#status")).to_contain_text("模型" if index else "Model", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    for tab, titles in TABS.items():
        page.get_by_role("tab", name=titles[index], exact=True).click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"i18n-{locale}-{tab}.png"), full_page=True)
        for part in TRANSLATED.get(tab, []) if index else []:
            english = _english_words(page.locator(part).first.inner_text())
            deadline = time.time() + 15  # the tab's lists redraw as it is shown; gradio's "processing" meanwhile
            while english and time.time() < deadline:
                page.wait_for_timeout(500)
                english = _english_words(page.locator(part).first.inner_text())
            assert not english, f"English in the Chinese page at {part}: {english}"
    page.close()


@pytest.mark.browser
def test_the_switch_changes_language_and_keeps_the_session(app_server, browser):
    url, _ = app_server
    page = browser.new_page(locale="en-US", viewport={"width": 1440, "height": 1000})
    page.goto(url)
    page.get_by_role("tab", name="Model", exact=True).click(timeout=60_000)  # Start here opens first
    length = page.get_by_label("Max sequence length")
    length.fill("3000")
    page.locator("#language").get_by_text("简体中文").click()
    expect(page.get_by_role("tab", name="模型", exact=True)).to_be_visible()
    expect(page.get_by_role("tab", name="对话", exact=True)).to_be_visible()
    length = page.get_by_label("最大序列长度")
    expect(length).to_have_value("3000")  # what was typed stays
    length.fill("2048")
    page.locator("#model-load").click()  # the server answers in the chosen language too
    expect(page.locator("#model-message")).to_contain_text("已加载", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "i18n-switched.png"), full_page=True)
    page.locator("#language").get_by_text("English").click()
    expect(page.get_by_role("tab", name="Model", exact=True)).to_be_visible()
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("locale, auto, pairs", [("en-US", "auto (detected)", "Prompt and reply"),
                                                 ("zh-CN", "自动（检测）", "提示与回复")])
def test_the_dataset_format_list_in_the_browsers_language(app_server, browser, tmp_path, locale, auto, pairs):
    """The Format box shows its choice's label in the page's language, the list every shape's title, and a
    choice made by its label reaches the handlers as the shape's id (the detection line names it)."""
    url, _ = app_server
    page = browser.new_page(locale=locale, viewport={"width": 1440, "height": 1000})
    page.goto(url)
    page.get_by_role("tab", name=TABS["dataset"][locale == "zh-CN"], exact=True).click(timeout=60_000)
    box = page.locator("#data-format input")
    expect(box).to_have_value(auto, timeout=30_000)
    table = tmp_path / "odd.csv"
    table.write_text("q,a,notes\nWhat do cats eat?,Mostly meat and fish.,x\nWhy is grass green?,Chlorophyll.,y\n")
    page.locator("#data-file input[type=file]").set_input_files(str(table))
    expect(page.locator("#data-report")).to_contain_text("q, a, notes", timeout=60_000)
    box.click()
    page.locator("#data-format").get_by_role("option", name=pairs, exact=True).wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / f"i18n-{locale}-dataset-formats.png"), full_page=True)
    page.locator("#data-format").get_by_role("option", name=pairs, exact=True).click()
    expect(box).to_have_value(pairs)
    expect(page.locator("#data-detected")).to_contain_text(f"pairs — {pairs}", timeout=60_000)
    expect(page.locator("#map-prompt")).to_be_visible()
    other, relabelled = ("English", "Prompt and reply") if locale == "zh-CN" else ("简体中文", "提示与回复")
    page.locator("#language").get_by_text(other).click()  # the switch relabels the list, keeps the choice
    expect(page.get_by_role("tab", name=TABS["dataset"][locale != "zh-CN"], exact=True)).to_be_visible(timeout=30_000)
    expect(box).to_have_value(relabelled, timeout=30_000)
    page.wait_for_timeout(2000)  # and it stays
    expect(box).to_have_value(relabelled)
    page.close()
