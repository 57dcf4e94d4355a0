"""Bad input: a plain message saying what was wrong and what to do, and nothing valid lost."""

import json
import os
import random

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
