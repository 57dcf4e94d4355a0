"""Wrappers and layouts: records under a top-level key, JSON Lines in a .json file, tables without a
header line, CRLF line ends and quoted cells over several lines (files in tests/data/)."""

import json
from pathlib import Path

import pytest

from engine.data import DataError, Options, inspect

DATA = Path(__file__).resolve().parent / "data"


def test_lmflow_text2text_instances_are_read_as_pairs():
    found = inspect(DATA / "lmflow_text2text.json")
    assert found.format == "pairs" and found.report.rows_kept == 3
    assert "Records read from the 'instances' field (type 'text2text')." in found.report.notes
    assert found.rows[1]["messages"] == [{"role": "user", "content": "Translate into French: Where is the train station?"},
                                         {"role": "assistant", "content": "Où est la gare ?"}]


def test_lmflow_conversation_instances_keep_their_system_prompt():
    found = inspect(DATA / "lmflow_conversation.json")
    assert found.format == "messages" and found.report.rows_kept == 2
    first = found.rows[0]["messages"]
    assert first[0] == {"role": "system", "content": "You are a patient maths tutor."}
    assert [m["role"] for m in first[1:]] == ["user", "assistant", "user", "assistant"]


def test_hugging_face_viewer_rows_are_unwrapped():
    found = inspect(DATA / "hf_viewer_rows.json")
    assert found.format == "alpaca" and found.report.rows_kept == 2
    assert found.rows[0]["messages"][1]["content"] == "Jupiter is the largest planet in the Solar System."
    assert any("dataset viewer" in note for note in found.report.notes)


def test_a_wrapper_beside_metadata_and_a_dict_of_columns_named_data(tmp_path):
    f = tmp_path / "wrapped.json"
    f.write_text(json.dumps({"version": "1.2", "name": "qa", "description": "a few questions", "split": "train",
                             "data": [{"question": "What colour is the sky?", "answer": "Blue on a clear day."}]}))
    assert inspect(f).rows[0]["messages"][0]["content"] == "What colour is the sky?"
    f.write_text(json.dumps({"prompt": ["Say hello politely.", "Say goodbye politely."], "data": ["a", "b"],
                             "response": ["Good morning to you.", "Farewell, and take care."]}))
    found = inspect(f)
    assert found.report.notes == ["Read as a table of columns."] and found.report.rows_kept == 2


def test_json_lines_with_crlf_saved_as_json_keep_line_numbers(tmp_path):
    found = inspect(DATA / "alpaca_lines.json")
    assert (found.source.kind, found.format, found.report.rows_kept) == ("jsonl", "alpaca", 4)
    text = (DATA / "alpaca_lines.json").read_bytes().split(b"\r\n")
    text[2] = b'{"instruction": "broken'
    f = tmp_path / "broken_lines.json"
    f.write_bytes(b"\r\n".join(text))
    found = inspect(f)
    assert found.report.rows_kept == 3 and found.report.dropped_rows == {"unreadable": [3]}


def test_headerless_tsv_keeps_its_first_row_as_a_pair():
    found = inspect(DATA / "pairs_headerless.tsv")
    assert found.format == "pairs" and found.report.rows_kept == 4
    assert found.rows[0]["messages"] == [{"role": "user", "content": "Hi, how are you?"},
                                         {"role": "assistant", "content": "I'm fine, thanks. And you?"}]
    assert found.samples[0].number == 1
    assert found.report.notes[0].startswith("The first line holds data, not column names (it starts 'Hi, how are you?')")


def test_a_header_of_names_is_still_a_header(tmp_path):
    f = tmp_path / "named.csv"
    f.write_text("Question,Answer,Source\nWhat is the speed of light?,About 300000 km per second.,physics notes\n")
    found = inspect(f)
    assert found.mapping == {"prompt": "Question", "response": "Answer"} and found.report.notes == []


def test_headerless_table_of_three_columns_asks_for_a_mapping(tmp_path):
    f = tmp_path / "three.csv"
    f.write_text("1,What is the capital of Peru?,Lima is the capital of Peru.\n2,Name a prime.,Seven is prime.\n")
    with pytest.raises(DataError, match="column_1, column_2, column_3"):
        inspect(f)
    found = inspect(f, Options(format="pairs", mapping={"prompt": "column_2", "response": "column_3"}))
    assert found.report.rows_kept == 2 and "column_1 to column_3: map them to roles" in found.report.notes[0]


def test_quoted_cells_over_several_crlf_lines():
    found = inspect(DATA / "excel_multiline.csv")
    assert found.report.rows_kept == 3 and found.report.errors == []
    assert found.rows[0]["messages"][1]["content"] == (
        "Waves fold into foam,\nsalt wind combs the silver dunes,\nthe tide keeps its time.")
    assert found.rows[1]["messages"][1]["content"] == "Red\nBlue"
    assert found.rows[2]["messages"][1]["content"] == 'An answer with "quoted" words, and a comma.'
    assert [s.number for s in found.samples] == [2, 5, 7]


def test_a_survey_export_whose_header_asks_questions_keeps_its_header(tmp_path):
    f = tmp_path / "form.csv"
    f.write_text("Timestamp,What would you like to ask?,What should the answer be?\n"
                 "2026/11/30 10:02:11,How do I reset my password?,Open Settings and choose Reset password.\n")
    with pytest.raises(DataError, match="Columns seen: Timestamp, What would you like to ask"):
        inspect(f)
