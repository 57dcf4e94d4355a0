"""Demo mode and the login through the app's real HTTP API, as an anonymous caller on the internet
would use it (issue 17): every event a visitor may not use is refused, by name or by raw queue
index, and nothing in the workspace changes; with a login set, a caller without one gets nothing."""

from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client

from conftest import launched_app

# The events open to a demo visitor, reviewed: chatting (and its preset, side and session controls, the API's
# address), comparing and voting, reading
# runs and the live view, the lists that follow the workspace, the banner. Page-load events without inputs
# (a component's initial value) are open too, and skipped here.
OPEN_TO_VISITORS = {
    "add_user", "add_user_1", "answer", "answer_1", "answer_2", "go_on", "set_aside", "stop", "clear", "choose",
    "offer", "offer_1", "offer_2", "offer_3", "forget", "forget_1", "hide_choice",
    "hide_choice_1", "chat_box",
    "refresh_sides", "refresh_sides_1", "export_chat", "recall", "generate", "lambda", "api_info",
    "lambda_3", "lambda_4", "lambda_5", "lambda_6",  # the end of a run: its next-step row and buttons (tab switches)
    "show_run", "pick_example_1", "run_compare", "stop_1", "vote", "vote_1", "vote_2", "compare",
    "show", "tick", "_pick_row", "_keep", "show_run_1", "show_download", "show_1", "show_access",
    "partial", "refresh", "refresh_1", "refresh_2", "refresh_3", "form_lists", "layer_list", "saved_list",
    "goal_blurb", "own_file_row", "reattach", "follow_run",  # Start here: a goal, the file row, its run
    "switch", "hardware_text", "run_lists",  # the language, the Model tab's machine line, the runs to pick from
    "format_list", "format_list_1", "keep_format", "keep_format_1",  # the Format list in the page's language
}
REFUSED = "only the app's owner can do this"


def _files(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "app.log"}


def call(url: str, fn_index: int, data: list, session: str = "visitor", event_data: dict | None = None) -> dict:
    """One event through the queue, as a raw request by its index; the final message."""
    httpx.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                     "event_data": event_data, "trigger_id": None}).raise_for_status()
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue closed without an answer")


def test_a_demo_visitor_is_refused_every_owner_event(workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DEMO", "1")
    before = _files(workspace.root)
    with launched_app(workspace, "--no-model") as url:
        config = httpx.get(url + "config").json()
        values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        owner_events = [d for d in config["dependencies"] if d["backend_fn"] and d["api_name"] not in OPEN_TO_VISITORS
                        and not (d["inputs"] == [] and all(t[1] == "load" for t in d["targets"]))]
        assert {"load_model", "unload_model", "train_start", "train_stop", "delete", "rename", "export",
                "do_push", "save", "import_card", "export_zip"} <= {d["api_name"] for d in owner_events}
        for event in owner_events:
            selected = {"index": [0, 0], "value": None, "selected": True} if event["collects_event_data"] else None
            answer = call(url, event["id"], [values.get(i) for i in event["inputs"]], event_data=selected)
            assert not answer["success"] and REFUSED in (answer["output"].get("error") or ""), (event["api_name"], answer)
        client = Client(url, verbose=False)
        named = client.view_api(all_endpoints=True, print_info=False, return_format="dict")["named_endpoints"]
        assert "/train_start" in named
        with pytest.raises(Exception, match=REFUSED):  # gradio_client's AppError carries the app's message
            client.predict(api_name="/unload_model")
    assert _files(workspace.root) == before


def test_with_a_login_set_a_caller_without_one_gets_nothing(workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AUTH", "ann:a-long-secret")
    with launched_app(workspace, "--no-model") as url:
        assert httpx.get(url + "config").status_code == 401
        join = httpx.post(url + "gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": "x"})
        assert join.status_code == 401
        with httpx.Client() as owner:
            owner.post(url + "login", data={"username": "ann", "password": "a-long-secret"}).raise_for_status()
            assert owner.get(url + "config").status_code == 200
