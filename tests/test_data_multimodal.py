"""Rows that need an image: the app trains text models, so they are never trained (a placeholder
would be learned as text); a file of them gives its text-only rows only when the person asks."""

import subprocess
import sys
from pathlib import Path

from engine.data import Options, inspect

DATA = Path(__file__).resolve().parent / "data"


def test_llava_rows_are_left_out_and_the_text_only_rows_wait_for_a_choice():
    ins = inspect(DATA / "llava_mix.json")
    assert ins.format == "sharegpt"
    assert "3 of 5 sampled records hold images; this app trains text models." in ins.detection.evidence
    assert (ins.report.rows_kept, ins.report.dropped_rows) == (0, {"has_image": [1, 3, 5], "text_only_row": [2, 4]})
    assert ins.report.errors[0] == {"row": 1, "message": "Row 1 holds an image in 'image'; this app trains text models."}
    # row 5 names no image file, but its placeholder would be trained as text
    assert ins.report.errors[2]["message"] == "Row 5 holds the image placeholder <image>; this app trains text models."
    assert any("this app trains text models" in n and "--text-only" in n for n in ins.report.notes)


def test_text_only_rows_are_used_when_chosen_and_no_placeholder_is_ever_trained():
    ins = inspect(DATA / "llava_mix.json", Options(text_only=True))
    assert [r["messages"][0]["content"] for r in ins.rows] == ["How do I make a cup of green tea?",
                                                               "Write a limerick about a lighthouse keeper."]
    assert ins.report.dropped_rows == {"has_image": [1, 3, 5]}
    assert not any("<image" in m["content"] for r in ins.rows for m in r["messages"])


def test_image_content_parts_are_found_not_silently_dropped():
    ins = inspect(DATA / "openai_vision.jsonl", Options(text_only=True))
    assert ins.report.errors == [{"line": 1, "message": "Line 1 holds an image content part; this app trains text models."}]
    assert ins.rows == [{"messages": [{"role": "user", "content": "Which bird sings at dawn in English gardens?"},
                                      {"role": "assistant", "content": "The European robin and the blackbird sing first."}]}]


def test_cli_inspect_says_the_app_trains_text_models():
    root = DATA.parent.parent
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(DATA / "llava_mix.json"), "--no-render",
                           "--text-only"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 of 5 sampled records hold images; this app trains text models." in done.stdout
    assert "Rows: 5 in, 2 kept, 3 dropped" in done.stdout and "Its text-only rows are used, as chosen." in done.stdout
