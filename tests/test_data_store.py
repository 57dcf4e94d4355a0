"""Saving a data set to the workspace: data.jsonl, meta.json, names, and failures that leave nothing behind."""

import json
from pathlib import Path

import pytest

from engine.data import DataError, Options, load_conversations
from engine.data.store import import_file, list_datasets, read_dataset, read_meta

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"


@pytest.fixture
def ws(new_workspace):
    return new_workspace("data", model=False)


def test_import_saves_rows_and_meta(ws):
    target, inspection = import_file(ws, "zora", EXAMPLES / "sharegpt_sample.jsonl",
                                     Options(system_prompt="unused: every row has one"), template="model", fallback="alpaca")
    assert target == ws.datasets / "zora"
    rows = [json.loads(line) for line in (target / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 6 and rows[0]["messages"][0]["role"] == "system"
    assert load_conversations("zora", ws) == rows == read_dataset(ws, "zora")
    meta = read_meta(ws, "zora")
    assert meta.source.file == "sharegpt_sample.jsonl" and meta.format == "sharegpt"
    assert meta.mapping == {"conversations": "conversations"}
    assert meta.template == {"choice": "model", "fallback": "alpaca"}
    assert meta.counts.model_dump() == {"rows_in": 6, "rows_kept": 6, "dropped": {}}
    assert len(meta.fingerprint) == 64 and meta.kind == "conversations"
    assert json.loads((target / "meta.json").read_text())["counts"]["rows_kept"] == 6
    assert [(d.name, d.problem) for d in list_datasets(ws)] == [("zora", "")]


def test_names_duplicates_and_replacing(ws, tmp_path):
    with pytest.raises(DataError, match="cannot be a data set name"):
        import_file(ws, "../escape", EXAMPLES / "alpaca_sample.json")
    import_file(ws, "alpaca", EXAMPLES / "alpaca_sample.json")
    with pytest.raises(DataError, match="already exists"):
        import_file(ws, "alpaca", EXAMPLES / "sharegpt_sample.jsonl")
    import_file(ws, "alpaca", EXAMPLES / "sharegpt_sample.jsonl", overwrite=True)
    assert read_meta(ws, "alpaca").format == "sharegpt"


def test_nothing_to_keep_saves_nothing_and_keeps_the_old_set(ws, tmp_path):
    import_file(ws, "keep", EXAMPLES / "alpaca_sample.json")
    useless = tmp_path / "useless.jsonl"
    useless.write_text(json.dumps({"messages": [{"role": "user", "content": "only a question, no answer"}]}) + "\n")
    with pytest.raises(DataError, match="(?s)Nothing was saved.*no assistant reply"):
        import_file(ws, "keep", useless, overwrite=True)
    assert read_meta(ws, "keep").format == "alpaca"
    assert sorted(p.name for p in ws.datasets.iterdir()) == ["keep"]


@pytest.mark.parametrize("damage", ['{"name": "cut", "created": "2026-', "", '["not", "a", "record"]',
                                    '{"name": "typed", "counts": {"rows_kept": "many"}}'])
def test_a_damaged_meta_is_listed_as_damaged_and_the_rest_still_works(ws, damage):
    import_file(ws, "good", EXAMPLES / "alpaca_sample.json")
    target, _ = import_file(ws, "hurt", EXAMPLES / "sharegpt_sample.jsonl")
    (target / "meta.json").write_text(damage, encoding="utf-8")
    listed = {d.name: d for d in list_datasets(ws)}
    assert listed["good"].meta.format == "alpaca" and listed["good"].row()["rows"] == 12
    hurt = listed["hurt"]
    assert hurt.meta is None and hurt.trainable
    assert hurt.label == ("hurt (damaged: its meta.json is missing or damaged; it still trains, and to repair its "
                          "record import its file again under this name, with Replace)")
    assert hurt.row()["format"] == "damaged" and "import its file again" in hurt.row()["from"]
    with pytest.raises(DataError, match="The data set 'hurt' is damaged: its meta.json is missing or damaged"):
        read_meta(ws, "hurt")
    assert len(load_conversations("hurt", ws)) == 6  # its rows still train
    import_file(ws, "hurt", EXAMPLES / "sharegpt_sample.jsonl", overwrite=True)
    assert read_meta(ws, "hurt").format == "sharegpt"


def test_a_data_set_without_rows_is_listed_as_not_trainable(ws):
    target, _ = import_file(ws, "gone", EXAMPLES / "alpaca_sample.json")
    (target / "data.jsonl").unlink()
    (ws.datasets / ".tokenized").mkdir()
    [gone] = list_datasets(ws)
    assert not gone.trainable and gone.problem.startswith("its data.jsonl is missing")
