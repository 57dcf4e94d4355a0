"""Bad input: a plain message saying what was wrong and what to do, and nothing valid lost."""

import json
import os
import random
import subprocess
import sys

import pytest

from engine.data import DataError, Options, inspect

GOOD = {"prompt": "What is the boiling point of water?", "response": "100 degrees Celsius at sea level."}


def test_truncated_json_object_names_line_and_column(tmp_path):
    f = tmp_path / "cut.json"
    f.write_text('{\n  "prompt": "Hello there",\n  "response": "Hi, how are', encoding="utf-8")
    with pytest.raises(DataError) as e:
        inspect(f)
    assert "line 3, column 15" in str(e.value) and "cut short" in str(e.value)


def test_truncated_json_list_keeps_every_record_before_the_break(tmp_path):
    text = json.dumps([GOOD] * 4, indent=1)
    f = tmp_path / "cut.json"
    f.write_text(text[: text.rindex("{") + 20], encoding="utf-8")
    ins = inspect(f, Options(keep_duplicates=True))
    assert ins.report.rows_kept == 3
    assert len(ins.report.errors) == 1
    message = ins.report.errors[0]["message"]
    assert "at line 15, column 13 (Unterminated string" in message and "The 3 records before that point were read" in message


def test_jsonl_bad_line_is_reported_and_every_other_line_kept(tmp_path):
    lines = [json.dumps(GOOD)] * 5
    lines[2] = '{"prompt": "broken", "response": '
    lines.insert(4, "[1, 2, 3]")
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = inspect(f, Options(keep_duplicates=True)).report
    assert (report.rows_in, report.rows_kept) == (6, 4)
    assert report.dropped_rows == {"unreadable": [3, 5]}
    assert report.errors[0]["line"] == 3 and "not valid JSON" in report.errors[0]["message"]
    assert report.errors[1] == {"line": 5, "message": "Line 5 is a list, not a record ({...} with named fields)."}


def test_csv_row_with_too_many_fields(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("prompt,response\r\nWhat is 2+2?,It is 4.\r\nName a fruit,Apple, or a pear\r\n"
                 '"Quoted, fine?","Yes, quoted commas are fine."\r\n', encoding="utf-8")
    ins = inspect(f)
    assert ins.report.rows_kept == 2
    assert ins.report.errors == [{"line": 3, "message": "Line 3 has 3 fields but the header has 2; a value holding the "
                                                       "separator ',' needs quotes around it."}]
    assert ins.rows[1]["messages"][0]["content"] == "Quoted, fine?"


def test_empty_file(tmp_path):
    for content in (b"", b"  \n\r\n "):
        f = tmp_path / "empty.jsonl"
        f.write_bytes(content)
        with pytest.raises(DataError, match="is empty"):
            inspect(f)


def test_utf16_csv_is_read(tmp_path):
    f = tmp_path / "excel.csv"
    f.write_text("question,answer\nWie spät ist es?,Es ist Mittag.\n", encoding="utf-16")
    ins = inspect(f)
    assert ins.rows[0]["messages"][0]["content"] == "Wie spät ist es?"
    assert ins.report.notes == ["Read as utf-16 text."]


def test_windows_1252_csv_is_read_with_a_note(tmp_path):
    f = tmp_path / "excel.csv"
    f.write_bytes("prompt;response\r\nCafé or thé?;Café, s'il vous plaît – merci.\r\n".encode("cp1252"))
    ins = inspect(f)
    assert ins.rows[0]["messages"][1]["content"] == "Café, s'il vous plaît – merci."
    assert ins.report.notes == ["Read as cp1252 text."]


def test_binary_garbage(tmp_path):
    f = tmp_path / "data.jsonl"
    f.write_bytes(random.Random(1).randbytes(5000))
    with pytest.raises(DataError, match="binary data"):
        inspect(f)
    f.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(1, 30)) * 20)
    with pytest.raises(DataError, match="binary data"):
        inspect(f)


def test_unknown_shape_lists_columns_and_known_shapes(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text(json.dumps({"foo": "a", "bar": 1}) + "\n" + json.dumps({"foo": "b", "baz": 2}) + "\n")
    with pytest.raises(DataError) as e:
        inspect(f)
    message = str(e.value)
    assert "Columns seen: foo, bar, baz" in message
    for shape in ("alpaca", "sharegpt", "messages", "chatml", "roleplay_markers", "pairs", "sillytavern_chat",
                  "character_card", "text"):
        assert shape in message


def test_file_over_the_size_limit_states_the_limit(tmp_path, monkeypatch):
    f = tmp_path / "big.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" * 2000)
    with pytest.raises(DataError, match=r"over the size limit of 1\.0 KB"):
        inspect(f, max_bytes=1024)
    monkeypatch.setenv("WORKBENCH_MAX_DATA_MB", "0.001")
    with pytest.raises(DataError, match=r"size limit of 1\.0 KB.*WORKBENCH_MAX_DATA_MB"):
        inspect(f)


def test_every_line_broken_and_missing_file(tmp_path):
    f = tmp_path / "all_bad.jsonl"
    f.write_text("{oops\n{nope\n")
    with pytest.raises(DataError, match="Nothing in 'all_bad.jsonl' could be read. Line 1 is not valid JSON"):
        inspect(f)
    with pytest.raises(DataError, match="There is no file"):
        inspect(tmp_path / "missing.jsonl")
    assert not os.path.exists(tmp_path / "missing.jsonl")


DATA = os.path.join(os.path.dirname(__file__), "data")


def test_a_git_lfs_pointer_says_to_fetch_the_real_file():
    with pytest.raises(DataError) as e:
        inspect(os.path.join(DATA, "lfs_pointer.jsonl"))
    assert str(e.value) == (
        "'lfs_pointer.jsonl' is a Git LFS pointer, not the data: it only names the real file (sha256 9f2c1b6a8e4d..., "
        "50.0 MB), which was never downloaded. Fetch the real file with `git lfs pull` in the repository it came from "
        "(or use the site's download link, not the raw pointer), then choose it again.")


def test_the_cli_says_the_same_for_a_pointer_and_exits_2():
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", os.path.join(DATA, "lfs_pointer.jsonl"),
                           "--no-render"], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 2 and done.stderr.startswith("Error: 'lfs_pointer.jsonl' is a Git LFS pointer")


def test_a_git_annex_pointer_and_a_saved_web_page(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text("../../.git/annex/objects/Qj/8F/SHA256E-s1048576--9f2c1b6a.jsonl/SHA256E-s1048576--9f2c1b6a.jsonl")
    with pytest.raises(DataError, match=r"git-annex pointer, not the data\. Fetch the real file with `git annex get train\.jsonl`"):
        inspect(f)
    with pytest.raises(DataError) as e:
        inspect(os.path.join(DATA, "saved_page.json"))
    assert str(e.value).startswith("'saved_page.json' is a web page (HTML), not a data file: the page showing the file "
                                   "was saved, not the file. Download the file itself")


def test_a_world_info_file_is_named_as_chat_context_not_rows():
    with pytest.raises(DataError) as e:
        inspect(os.path.join(DATA, "world_info_eldoria.json"))
    message = str(e.value)
    assert message.startswith("'world_info_eldoria.json' is a SillyTavern World Info file, a lorebook with 4 entries "
                              "('The kingdom of Eldoria', 'The Silver Tower', 'Tone', ...)")
    assert "not training examples" in message and "example dialogues become rows" in message


def test_a_novelai_lorebook_and_an_html_text_file(tmp_path):
    f = tmp_path / "lore.lorebook"
    f.write_text(json.dumps({"lorebookVersion": 5, "entries": [
        {"text": "The Iron Coast is a rainy shore of shipyards.", "keys": ["Iron Coast"], "displayName": "Iron Coast"}]}))
    with pytest.raises(DataError, match=r"^'lore\.lorebook' is a NovelAI lorebook, a lorebook with 1 entry \('Iron Coast'\)"):
        inspect(f)
    page = tmp_path / "page.txt"  # HTML in a text file may be meant as text to train on
    page.write_text("<html><body><p>A paragraph of HTML that someone wants the model to continue.</p></body></html>\n")
    assert inspect(page).format == "text"


def test_a_table_with_no_conversation_columns_says_what_each_holds():
    with pytest.raises(DataError) as e:
        inspect(os.path.join(DATA, "products.csv"))
    assert str(e.value).startswith(
        "'products.csv' has no column that holds a conversation or text to train on. Columns seen: sku, name, price, "
        "category, in_stock; what they hold: sku (short labels), name (short labels), price (numbers), category (short "
        "labels), in_stock (short labels). A data set for fine-tuning needs, in each row, a prompt and a reply")


def test_a_table_with_text_under_other_names_suggests_a_mapping(tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text("id,review,summary,stars\n1,The battery lasts two full days and the screen is bright.,Great battery "
                 "life.,5\n2,It stopped charging after a week and support never answered.,Broke quickly.,1\n")
    with pytest.raises(DataError) as e:
        inspect(f)
    assert ("Columns that hold text: review, summary. Choose a format and map your columns to its fields, e.g. the pairs "
            "format with prompt <- review and response <- summary (command line: --format pairs --map prompt=review "
            "--map response=summary)") in str(e.value)
