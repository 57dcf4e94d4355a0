"""Preference data (chosen/rejected pairs) and KTO sets, from small files in the real projects' layouts:
the chosen or desirable replies train in supervised mode, the records are kept for preference training."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import DataError, Options, inspect
from engine.data.store import import_file, read_dataset, read_meta, read_preference

DATA = Path(__file__).resolve().parent / "data"
ROOT = DATA.parent.parent


def read(name, options=Options()):
    records = []
    return inspect(DATA / name, options, preference_sink=records.append), records


def test_hh_rlhf_transcripts_become_the_chosen_conversation_and_its_pair():
    ins, pairs = read("hh_rlhf.jsonl")
    assert ins.format == "preference"
    assert any("Human:/Assistant: transcripts" in e for e in ins.detection.evidence)
    assert ins.rows[1]["messages"] == [
        {"role": "user", "content": "How do I boil an egg?"}, {"role": "assistant", "content": "Do you want it soft or hard?"},
        {"role": "user", "content": "Hard, please."},
        {"role": "assistant", "content": "Put it in boiling water for about ten minutes, then cool it in cold water."}]
    assert pairs[1]["prompt"] == ins.rows[1]["messages"][:3]
    assert pairs[1]["rejected"] == [{"role": "assistant", "content": "Microwave it for five minutes."}]
    # line 3's chosen transcript ends with an empty "Assistant:": dropped with its reason, not a half pair
    assert ins.report.dropped_rows == {"empty_reply": [3]} and len(pairs) == 2
    assert ins.report.errors == [{"line": 3, "message": "Line 3: the chosen reply is empty"}]
    assert any(n.startswith("Preference data: supervised training uses the chosen replies; 2 pairs") for n in ins.report.notes)


def test_binarized_ultrafeedback_is_read_as_pairs_not_as_messages():
    ins, pairs = read("ultrafeedback_binarized.jsonl")
    assert ins.format == "preference" and dict(ins.detection.candidates)["messages"] == 1.0
    assert "3 of 3 sampled records have 'messages' equal to 'chosen': a binarized preference set." in ins.detection.evidence
    assert ins.rows[1]["messages"][1]["content"].startswith("The capital of Australia is Canberra")
    assert pairs[1] == {"prompt": [{"role": "user", "content": "What is the capital of Australia?"}],
                        "chosen": [ins.rows[1]["messages"][1]], "rejected": [{"role": "assistant", "content": "Sydney."}]}


def test_a_conversation_with_preferred_and_non_preferred_reply_objects():
    ins, pairs = read("openai_preference.jsonl")
    assert (ins.format, ins.mapping) == ("preference", {"chosen": "preferred_output", "rejected": "non_preferred_output",
                                                        "prompt": "input"})
    assert [m["role"] for m in ins.rows[0]["messages"]] == ["system", "user", "assistant"]
    assert pairs[0]["prompt"][0] == {"role": "system", "content": "You are a polite travel agent."}
    assert ins.report.errors == [{"line": 2, "message": "Line 2: the rejected reply is empty"}]


def test_prompt_chosen_rejected_as_strings_with_a_system_prompt_for_both():
    ins, pairs = read("trl_preference.jsonl", Options(system_prompt="Answer briefly."))
    assert ins.rows[1]["messages"] == [{"role": "system", "content": "Answer briefly."},
                                       {"role": "user", "content": "Name a prime number greater than ten."},
                                       {"role": "assistant", "content": "Eleven is the first prime after ten."}]
    assert pairs[1]["prompt"] == ins.rows[1]["messages"][:2] and pairs[1]["rejected"][0]["content"] == "Twelve."


def test_chosen_and_rejected_of_different_conversations_are_dropped(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text(json.dumps({"chosen": "\n\nHuman: Hi there, friend.\n\nAssistant: Hello to you too!",
                             "rejected": "\n\nHuman: Something else entirely.\n\nAssistant: Go away."}) + "\n")
    ins = inspect(f)
    assert ins.report.dropped_rows == {"malformed": [1]}
    assert "continue different conversations" in ins.report.errors[0]["message"]


def test_saved_preference_set_keeps_its_pairs_beside_the_rows(workspace):
    target, ins = import_file(workspace, "hh", DATA / "hh_rlhf.jsonl")
    assert [r["messages"][-1]["content"] for r in read_dataset(workspace, "hh")][0].startswith("Trim the stems")
    meta = read_meta(workspace, "hh")
    assert (meta.preference.kind, meta.preference.rows, meta.preference.file) == ("pairs", 2, "preference.jsonl")
    kind, pairs = read_preference(workspace, "hh")
    assert kind == "pairs" and [set(p) for p in pairs] == [{"prompt", "chosen", "rejected"}] * 2
    assert pairs[0]["rejected"] == [{"role": "assistant", "content": "Flowers die anyway."}]


def test_a_set_without_preference_data_says_so(workspace):
    import_file(workspace, "plain", ROOT / "examples" / "data" / "alpaca_sample.json")
    assert not (workspace.dataset_path("plain") / "preference.jsonl").exists()
    assert read_meta(workspace, "plain").preference is None
    with pytest.raises(DataError, match="holds no preference data"):
        read_preference(workspace, "plain")


def test_cli_inspect_shows_preference_data():
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(DATA / "hh_rlhf.jsonl"), "--no-render"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Format: preference (confidence 100%)" in done.stdout
    assert "Note: Preference data: supervised training uses the chosen replies" in done.stdout
    assert "- an empty final reply: 1 (line 3)" in done.stdout


def test_kto_only_desirable_replies_train_and_every_labelled_one_is_kept_for_preference():
    ins, records = read("kto_mix.jsonl")
    assert (ins.format, ins.mapping) == ("kto", {"completion": "completion", "label": "label", "prompt": "prompt"})
    assert [r["messages"][1]["content"] for r in ins.rows] == ["A spider has eight legs.",
                                                               "How about Smoky, or Earl Grey if you like tea?"]
    assert ins.report.dropped_rows == {"undesirable": [2], "empty_reply": [4], "malformed": [5]}
    assert ins.report.errors == [{"line": 4, "message": "Line 4: the completion reply is empty"},
                                 {"line": 5, "message": "Line 5: 'label' is 'maybe', not desirable (true) or undesirable (false)"}]
    assert [(r["completion"][0]["content"], r["label"]) for r in records] == [
        ("A spider has eight legs.", True), ("Six, like all insects.", False),
        ("How about Smoky, or Earl Grey if you like tea?", True)]
    assert "- an undesirable reply (kept for preference training only): 1 (line 2)" in ins.report.summary()


def test_kto_conversations_with_a_label_and_their_saved_records(workspace):
    ins, records = read("kto_messages.json")
    assert (ins.format, ins.mapping) == ("kto", {"completion": "messages", "label": "label"})
    assert records[1] == {"prompt": [{"role": "user", "content": "Give me a synonym for quick."}],
                          "completion": [{"role": "assistant", "content": "Slowly."}], "label": False}
    import_file(workspace, "kto", DATA / "kto_messages.json")
    assert read_meta(workspace, "kto").counts.rows_kept == 1
    assert read_preference(workspace, "kto") == ("kto", records)


def test_conversational_pairs_and_single_reply_objects(tmp_path):
    prompt = [{"role": "system", "content": "You are a careful chemist."}, {"role": "user", "content": "Can I mix bleach and vinegar?"}]
    f, g = tmp_path / "pairs.jsonl", tmp_path / "objects.jsonl"
    f.write_text(json.dumps({"prompt": prompt, "chosen": [{"role": "assistant", "content": "No: together they release chlorine gas."}],
                             "rejected": [{"role": "assistant", "content": "Sure, it cleans better."}]}) + "\n")
    g.write_text(json.dumps({"conversation": prompt[1:], "chosen": {"role": "assistant", "content": "Never; it makes toxic gas."},
                             "rejected": {"role": "assistant", "content": "Yes."}}) + "\n")
    ins = inspect(f)
    assert ins.format == "preference"
    assert ins.rows[0]["messages"] == [*prompt, {"role": "assistant", "content": "No: together they release chlorine gas."}]
    ins = inspect(g, preference_sink=(pairs := []).append)
    assert (ins.mapping["prompt"], ins.report.rows_kept) == ("conversation", 1)
    assert pairs[0] == {"prompt": prompt[1:], "chosen": [{"role": "assistant", "content": "Never; it makes toxic gas."}],
                        "rejected": [{"role": "assistant", "content": "Yes."}]}
