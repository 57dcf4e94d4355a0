"""The Hub token stays secret through the page: the Export tab of a launched `python app.py` pushes to a
stand-in of the Hub (tests/fake_hub.py, since the real Hub cannot be reached from here) once with the
token typed in the password field and once from the app's HF_TOKEN environment variable. The token
must reach the Hub in the Authorization header and nowhere else: not the app's log, not a file of
the workspace, not a response the browser received (recorded in a HAR file with bodies), not the
page or its storage."""

from __future__ import annotations

import json

import pytest
from export_runs import make_run
from fake_hub import TOKEN, fake_hub
from playwright.sync_api import expect

from engine.export.exporter import export
from tests.conftest import ARTIFACTS, launched_app

PUSH_S = 120_000  # ms: uploading the tiny adapter to the local stand-in on two shared cores


@pytest.mark.browser
def test_a_push_from_the_page_keeps_the_token_out_of_logs_files_responses_and_the_page(
        new_workspace, tiny_model_path, browser, tmp_path):
    ws = new_workspace("secrets", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    export(ws, "tiny", "adapter")
    har = tmp_path / "page.har"
    with fake_hub() as (hub, endpoint), launched_app(
            ws, "--no-model", env={"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}) as url:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, record_har_path=str(har),
                                      record_har_content="embed")
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Export").click()
        expect(page.locator("#export-run input")).to_have_value("tiny", timeout=30_000)
        page.get_by_text("Push to the Hugging Face Hub").click()
        page.locator("#export-push-choice input").click()
        page.get_by_role("option").first.click()
        token_box = page.locator("#export-token input, #export-token textarea").first
        pushed = page.locator("#export-pushed")
        for repo, typed in (("someone/typed", TOKEN), ("someone/from-env", "")):
            page.locator("#export-repo input, #export-repo textarea").first.fill(repo)
            token_box.fill(typed)
            page.locator("#export-push").click()
            expect(pushed).to_contain_text(f"Pushed to {endpoint}/{repo} (private)", timeout=PUSH_S)
            expect(token_box).to_have_value("")  # a typed token is not kept in the page after the push
        page.locator("#export-pushed").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "export_pushed.png"))
        page_text = page.content()
        storage = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
        context.close()  # writes the HAR

    assert set(hub.files) == {"someone/typed", "someone/from-env"}
    # At the Hub: in the Authorization header of the repository requests, nowhere else.
    repo_requests = [r for r in hub.requests if r["path"] != "/api/validate-yaml"]
    assert repo_requests and all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in repo_requests)
    assert not any(TOKEN in v for r in hub.requests for k, v in r["headers"].items() if k != "authorization")
    assert not any(TOKEN.encode() in r["body"] for r in hub.requests)
    # In the app: not in its log nor any file it wrote (runs, exports, settings, the offered downloads).
    written = [p for p in ws.root.rglob("*") if p.is_file()]
    assert ws.root / "app.log" in written
    assert [str(p) for p in written if TOKEN.encode() in p.read_bytes()] == []
    # In the browser: no response carried it back, and the page and its storage do not hold it.
    entries = json.loads(har.read_text())["log"]["entries"]
    assert any("Pushed to" in json.dumps(e["response"]) for e in entries)  # the event replies were recorded
    assert [e["request"]["url"] for e in entries if TOKEN in json.dumps(e["response"])] == []
    assert TOKEN not in page_text and TOKEN not in storage
