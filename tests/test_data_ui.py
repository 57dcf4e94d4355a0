"""The Dataset tab's handlers called as plain functions of a Context on a real workspace, no browser:
the one drop report (the engine's, shown by the tab and printed by the CLI), Save refused for a file
that cannot be used, a failed save that says why and keeps what was saved, stale lines cleared, and the
preview reaching every example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.chat.models import ModelManager
from engine.data import Options, inspect
from engine.data.rules import DataReport
from engine.data.store import import_file
from ui import dataset_tab as tab
from ui.context import Context
from ui.dataset_view import PAGE

ROOT = Path(__file__).resolve().parent.parent
PIRATE = ROOT / "examples" / "data" / "pirate.jsonl"
GOOD = {"messages": [{"role": "user", "content": "Who are you, stranger?"},
                     {"role": "assistant", "content": "A pirate. Arr, matey!"}]}
FOUND = 2 + len(tab.FIELDS)  # where analyse returns the inspection; then the name, Save, the note, the example


@pytest.fixture
def ctx(workspace):
    from engine.hardware import detect

    return Context(workspace, ModelManager(workspace), detect())


def analysed(ctx, path) -> tuple:
    out = tab.analyse(ctx, str(path), tab.AUTO, "", 20, False, False, False, False, "User", False)
    return out[1], out[FOUND], out[FOUND + 2], out[FOUND + 3]  # report, inspection, Save button, its note


def unescaped(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown)


def test_the_drop_report_lists_reasons_with_where_to_look_problems_and_notes():
    r = DataReport(unit="line", notes=["Read as UTF-8 with a byte-order mark."])
    for number in range(1, 13):
        r.drop("no_assistant_reply", number)
    r.drop("unreadable", 13, "Line 13 is not valid JSON.")
    r.keep()
    text = r.summary()
    assert text.startswith("Lines: 14 in, 1 kept, 13 dropped")
    assert "- no assistant reply: 12 (lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...)" in text
    assert "- could not be read: 1 (line 13)" in text
    assert "Problems found:\n- Line 13 is not valid JSON." in text
    assert text.endswith("Note: Read as UTF-8 with a byte-order mark.")


def test_the_tab_and_the_cli_show_the_engines_one_report(ctx, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join([json.dumps(GOOD), "{broken", json.dumps({"messages": GOOD["messages"][:1]}),
                            "a *starred* line_with_underscores"]) + "\n")
    summary = inspect(f, Options()).report.summary()
    assert "- could not be read: 2 (lines 2, 4)" in summary and "- no assistant reply: 1 (line 3)" in summary
    report, *_ = analysed(ctx, f)
    assert unescaped(report) == summary  # shown literally: the file's * and _ are not Markdown
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(f), "--no-render"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert summary in done.stdout


def test_save_is_off_for_a_file_that_cannot_be_used_and_a_direct_call_is_refused(ctx, tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 8)
    report, found, button, note = analysed(ctx, garbage)
    assert "This file can't be used" in report and found is None
    assert button.interactive is False and "can't be used as it is" in note
    assert "Not saved" in tab.save(ctx, str(garbage), None, "garbage", False, "model", "chatml")

    hollow = tmp_path / "hollow.jsonl"  # readable, but nothing in it can be trained on
    hollow.write_text(json.dumps({"messages": GOOD["messages"][:1]}) + "\n")
    report, found, button, note = analysed(ctx, hollow)
    assert found.report.rows_kept == 0 and "Nothing can be trained on yet" in report
    assert button.interactive is False and "no example of this file can be trained on" in note
    assert "no example of this file" in tab.save(ctx, str(hollow), found, "hollow", False, "model", "chatml")

    _, pirate, button, note = analysed(ctx, PIRATE)
    assert button.interactive is True and note == ""
    # the report shown is for the pirate file, not the one now chosen: Save waits for its own report
    assert "still being made" in tab.save(ctx, str(hollow), pirate, "mixed-up", False, "model", "chatml")
    assert list(ctx.workspace.datasets.iterdir()) == []


def test_a_failed_save_says_why_beside_save_and_keeps_what_was_saved(ctx):
    _, found, _, _ = analysed(ctx, PIRATE)
    assert "Saved **108** rows as **pirate**" in tab.save(ctx, str(PIRATE), found, "pirate", False, "model", "chatml")
    before = tab.saved_list(ctx)
    again = tab.save(ctx, str(PIRATE), found, "pirate", False, "model", "chatml")
    assert again.startswith("**Not saved.**") and "already exists" in again
    outside = tab.save(ctx, str(PIRATE), found, "../escape", False, "model", "chatml")
    assert outside.startswith("**Not saved.**") and not (ctx.workspace.root / "escape").exists()
    assert tab.saved_list(ctx).equals(before) and list(before["rows"]) == [108]


def test_a_new_file_clears_the_last_outcome_and_the_saved_list_follows_the_workspace(ctx, tmp_path):
    _, found, _, _ = analysed(ctx, PIRATE)
    tab.save(ctx, str(PIRATE), found, "pirate", False, "model", "chatml")
    alpaca = ROOT / "examples" / "data" / "alpaca_sample.json"
    _, _, button, note = analysed(ctx, alpaca)
    assert note == "" and button.interactive is True  # "Saved 108 rows" does not stay under another file
    cleared = tab.analyse(ctx, None, tab.AUTO, "", 20, False, False, False, False, "User", False)
    assert cleared[0] == "Upload a file to begin." and cleared[FOUND + 3] == tab.NO_FILE
    import_file(ctx.workspace, "from-the-cli", alpaca)  # saved outside this tab
    assert list(tab.saved_list(ctx)["name"]) == ["from-the-cli", "pirate"]


def test_the_preview_pages_reach_every_example(ctx, default_model_path):
    assert tab.show_example(ctx, None, 1, "default", "model", "chatml", 2048)[0].visible is False  # no file yet
    _, found, _, _ = analysed(ctx, PIRATE)
    lines = PIRATE.read_text().splitlines()
    model = str(default_model_path)
    shown, html, raw, slider, page, caption = tab.show_example(ctx, found, 1, model, "model", "chatml", 2048)
    assert shown.visible and slider["maximum"] == 108 and len(page) == PAGE
    assert caption.startswith(f"Showing 1–{PAGE} of 108 examples")
    last = tab.turn_page(found, 1, 1000)
    shown, html, raw, slider, page, caption = tab.show_example(ctx, found, last, model, "model", "chatml", 2048)
    assert last == 101 and caption.startswith("Showing 101–108 of 108 examples")
    assert raw == json.loads(lines[100]) and "Example 101 of 108, from line 101" in html
    _, html, raw, *_ = tab.show_example(ctx, found, 108, model, "model", "chatml", 2048)
    assert raw == json.loads(lines[107]) and list(page["line"]) == list(range(101, 109))
    assert tab.turn_page(found, 108, -1) == 91 and tab.turn_page(found, 3, -1) == 1
    # a model that cannot render leaves the example, its record and its page, and says why
    _, html, raw, _, page, _ = tab.show_example(ctx, found, 108, "no such thing", "model", "chatml", 2048)
    assert "Not rendered for 'no such thing'" in html and "Check the spelling" in html
    assert raw == json.loads(lines[107]) and list(page["line"]) == list(range(101, 109))
    assert "Not counted" in tab.show_stats(ctx, found, "no such thing", "model", "chatml", 2048)[1]
    plot, stats, _ = tab.show_stats(ctx, found, model, "model", "chatml", 2048)
    assert sum(plot.value["data"][i][1] for i in range(len(plot.value["data"]))) == 108
