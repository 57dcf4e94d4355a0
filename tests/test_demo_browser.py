"""Demo mode in Chromium with two people at once (issue 17): the owner (signed in, named in
WORKBENCH_OWNERS) trains and starts a second run, which waits at place 2, while a visitor (signed in,
not an owner) chats; the visitor's Train and Export controls are locked and a banner says why."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, end_workers, launched_app
from engine.train import line

pytestmark = pytest.mark.browser


def sign_in(browser, url: str, user: str, password: str):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#status").wait_for(timeout=60_000)
    return page


def test_the_owner_trains_while_a_visitor_chats_with_the_controls_locked(new_workspace, browser, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AUTH", "ann:owner-secret,guest:visitor-secret")
    monkeypatch.setenv("WORKBENCH_DEMO", "1")
    monkeypatch.setenv("WORKBENCH_OWNERS", "ann")
    ARTIFACTS.mkdir(exist_ok=True)
    workspace = new_workspace("demo")
    with launched_app(workspace) as url:
        owner = sign_in(browser, url, "ann", "owner-secret")
        expect(owner.locator("#access")).to_contain_text("Signed in as the app's owner", timeout=30_000)  # after every tab's load events
        owner.get_by_role("tab", name="Train").click()
        owner.locator("#train-start").click()
        expect(owner.locator("#train-start-message")).to_contain_text("Started", timeout=60_000)
        owner.locator("#train-start").click()  # a second run while the first trains
        expect(owner.locator("#train-start-message")).to_contain_text("waits in line", timeout=60_000)
        expect(owner.locator("#train-start-message")).to_contain_text("place 2")

        visitor = sign_in(browser, url, "guest", "visitor-secret")
        expect(visitor.locator("#access")).to_contain_text("Demo", timeout=30_000)
        visitor.get_by_role("tab", name="Train").click()
        for control in ("#train-start", "#train-plan"):
            expect(visitor.locator(control)).to_be_disabled()
        visitor.screenshot(path=str(ARTIFACTS / "demo-visitor-train.png"))
        visitor.get_by_role("tab", name="Export").click()
        expect(visitor.get_by_role("button", name="Export and verify")).to_be_disabled()
        visitor.get_by_role("tab", name="Chat").click()
        visitor.locator("#chat-input textarea").fill("What is the capital of France?")
        visitor.locator("#chat-send").click()
        expect(visitor.locator("#chat-stats")).to_contain_text("tokens", timeout=180_000)
        visitor.screenshot(path=str(ARTIFACTS / "demo-visitor-chat.png"))
        owner.screenshot(path=str(ARTIFACTS / "demo-owner-train.png"))
        waiting = line.waiting(workspace)
        assert len(waiting) == 1
        line.leave(workspace, waiting[0].name)  # the line ends here; the running worker is ended with the workspace
    end_workers(workspace)
