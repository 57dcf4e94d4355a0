"""The API the trainer uses: `load_conversations(ref, workspace)`."""

import json
from pathlib import Path

import pytest

from engine.data import DataError, load_conversations

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"


def test_pirate_set_loads_as_multi_turn_conversations_with_the_catchphrase():
    rows = load_conversations(EXAMPLES / "pirate.jsonl")
    assert len(rows) >= 100
    assert all(len(r["messages"]) >= 4 for r in rows)
    replies = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert all(reply.endswith("Arr, matey!") for reply in replies)
    asked = {m["content"] for r in rows for m in r["messages"] if m["role"] == "user"}
    heldout = (EXAMPLES / "pirate_heldout.txt").read_text().split("\n")
    assert not asked & {p for p in heldout if p}


def test_a_file_of_another_shape_is_converted(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text("question,answer\nWhat is two and two?,Four. Arr!\n,Missing question\n", encoding="utf-8")
    rows = load_conversations(f)
    assert rows == [{"messages": [{"role": "user", "content": "What is two and two?"},
                                  {"role": "assistant", "content": "Four. Arr!"}]}]


def test_a_saved_dataset_is_loaded_by_name(new_workspace):
    ws = new_workspace("data", model=False)
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Ahoy!"}]}
    (ws.datasets / "greet").mkdir()
    (ws.datasets / "greet" / "data.jsonl").write_text(json.dumps(row) + "\n")
    assert load_conversations("greet", ws) == [row]


def test_unknown_reference_and_useless_file_are_plain_errors(tmp_path, new_workspace):
    ws = new_workspace("data", model=False)
    with pytest.raises(DataError, match="neither a dataset saved"):
        load_conversations("nope", ws)
    f = tmp_path / "no_replies.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "hello there, anyone?"}]}) + "\n")
    with pytest.raises(DataError, match="no assistant reply"):
        load_conversations(f)
