"""Every record shape and file type the data engine reads, from real small files."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.data import DataError, Options, Rules, inspect, read_card

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def test_alpaca_example_with_input_and_system(tmp_path):
    ins = inspect(EXAMPLES / "data" / "alpaca_sample.json")
    assert (ins.format, ins.source.kind, ins.detection.confidence) == ("alpaca", "json", 1.0)
    assert ins.report.rows_in == ins.report.rows_kept == 12
    translate = ins.rows[1]["messages"]
    assert translate == msgs(("user", "Translate the sentence into French.\n\nThe cat is sleeping on the chair."),
                             ("assistant", "Le chat dort sur la chaise."))
    f = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Say hi politely", "input": "", "output": "Hello there, friend!",
                                            "system": "Be kind.", "history": [["Who are you?", "A helper, at your service."]]}])
    assert inspect(f).rows[0]["messages"] == msgs(("system", "Be kind."), ("user", "Who are you?"),
                                                  ("assistant", "A helper, at your service."),
                                                  ("user", "Say hi politely"), ("assistant", "Hello there, friend!"))


def test_sharegpt_example_keeps_system_turn():
    ins = inspect(EXAMPLES / "data" / "sharegpt_sample.jsonl")
    assert ins.format == "sharegpt" and ins.report.rows_kept == 6
    first = ins.rows[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[0]["content"].startswith("You are Madame Zora")


def test_sharegpt_tool_turns_and_tools_are_kept(tmp_path):
    tools = [{"name": "weather", "description": "Weather for a city", "parameters": {"type": "object"}}]
    f = write_jsonl(tmp_path / "tools.jsonl", [{
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})},
            {"from": "observation", "value": "{\"temp\": 21}"},
            {"from": "gpt", "value": "It is 21 degrees in Paris."}],
        "system": "Use tools when useful.",
        "tools": json.dumps(tools)}])
    row = inspect(f).rows[0]
    assert json.loads(row["tools"]) == tools
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert row["messages"][2]["tool_calls"] == [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]
    assert row["messages"][3]["content"] == '{"temp": 21}'


def test_messages_with_tool_calls_and_content_parts(tmp_path):
    call = [{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}]
    f = write_jsonl(tmp_path / "m.jsonl", [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Add one and two."}]},
        {"role": "assistant", "content": None, "tool_calls": call},
        {"role": "tool", "content": "3", "tool_call_id": "c1"},
        {"role": "assistant", "content": "One plus two is 3."}]}])
    messages = inspect(f).rows[0]["messages"]
    assert messages[0] == {"role": "user", "content": "Add one and two."}
    assert messages[1] == {"role": "assistant", "content": "", "tool_calls": call}
    assert messages[2] == {"role": "tool", "content": "3", "tool_call_id": "c1"}


def test_chatml_text(tmp_path):
    text = ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nCapital of Italy?<|im_end|>\n"
            "<|im_start|>assistant\nRome.<|im_end|>\n<|im_start|>user\nAnd Spain?<|im_end|>\n<|im_start|>assistant\nMadrid.<|im_end|>")
    ins = inspect(write_jsonl(tmp_path / "c.jsonl", [{"text": text}]))
    assert ins.format == "chatml"
    assert ins.rows[0]["messages"] == msgs(("system", "You are terse."), ("user", "Capital of Italy?"),
                                           ("assistant", "Rome."), ("user", "And Spain?"), ("assistant", "Madrid."))


def test_chatml_plain_text_file_splits_conversations_at_markers(tmp_path):
    one = "<|im_start|>user\nHello there\n\nfriend<|im_end|>\n<|im_start|>assistant\nHi! Lovely day.<|im_end|>"
    f = tmp_path / "chats.txt"
    f.write_text(one + "\n\n" + one.replace("Hello", "Good morning") + "\n", encoding="utf-8")
    ins = inspect(f)
    assert (ins.format, ins.report.rows_kept) == ("chatml", 2)
    assert ins.rows[0]["messages"][0]["content"] == "Hello there\n\nfriend"
    assert [s.number for s in ins.samples] == [1, 8]


def test_roleplay_markers_with_description_as_system(tmp_path):
    text = ("<|system|>Old system text</s>\n<|user|>Who goes there?</s>\n<|assistant|>Tis I, the knight!</s>\n"
            "<|user|>Prove it.</s>\n<|assistant|>Behold my shining armour.</s>")
    f = write_jsonl(tmp_path / "rp.jsonl", [{"name": "Knight", "description": "You are a brave knight.", "text": text}])
    ins = inspect(f)
    assert (ins.format, ins.mapping) == ("roleplay_markers", {"text": "text", "system": "description"})
    assert ins.rows[0]["messages"] == msgs(("system", "You are a brave knight."), ("user", "Who goes there?"),
                                           ("assistant", "Tis I, the knight!"), ("user", "Prove it."),
                                           ("assistant", "Behold my shining armour."))


@pytest.mark.parametrize("prompt,response", [("prompt", "response"), ("question", "answer"), ("input", "output"),
                                             ("context", "response"), ("query", "answer")])
def test_pairs_under_common_names(tmp_path, prompt, response):
    f = tmp_path / "p.csv"
    f.write_text(f"{prompt},{response},system\nHow tall is Everest?,About 8849 metres.,Be exact.\n", encoding="utf-8")
    ins = inspect(f)
    assert (ins.format, ins.mapping["prompt"], ins.mapping["response"]) == ("pairs", prompt, response)
    assert ins.rows[0]["messages"] == msgs(("system", "Be exact."), ("user", "How tall is Everest?"),
                                           ("assistant", "About 8849 metres."))


def test_sillytavern_chat_export_is_one_conversation(tmp_path):
    f = write_jsonl(tmp_path / "chat.jsonl", [
        {"user_name": "You", "character_name": "Bess", "create_date": "2024-1-1", "chat_metadata": {}},
        {"name": "Bess", "is_user": False, "mes": "Ahoy! Who comes aboard?"},
        {"name": "You", "is_user": True, "mes": "A friend looking for work."},
        {"name": "Bess", "is_user": False, "is_system": True, "mes": "(hidden note)"},
        {"name": "Bess", "is_user": False, "mes": "Then grab a mop, matey!"}])
    ins = inspect(f)
    assert ins.format == "sillytavern_chat" and ins.report.rows_kept == 1
    assert ins.rows[0]["messages"] == msgs(("assistant", "Ahoy! Who comes aboard?"),
                                           ("user", "A friend looking for work."), ("assistant", "Then grab a mop, matey!"))


def test_character_card_json_and_png_give_the_same_card():
    json_card, png_card = read_card(EXAMPLES / "cards" / "captain_bess.json"), read_card(EXAMPLES / "cards" / "captain_bess.png")
    assert json_card == png_card and json_card.spec == "v2"
    opening = json_card.opening(user="Ann")
    assert opening[0]["role"] == "system" and "Captain Barnacle Bess is the weathered captain" in opening[0]["content"]
    assert "Ann has just come aboard" in opening[0]["content"]
    assert opening[1] == {"role": "assistant", "content": "Ahoy, Ann! Welcome aboard the Salty Gull. Mind the ropes and tell me what troubles ye. Arr, matey!"}
    ins = inspect(EXAMPLES / "cards" / "captain_bess.png")
    assert (ins.source.kind, ins.format, ins.report.rows_kept) == ("png", "character_card", 2)
    assert [m["role"] for m in ins.rows[1]["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_character_card_v1_and_v3_png(tmp_path):
    v1 = {"name": "Zed", "description": "{{char}} is a robot.", "personality": "dry", "scenario": "",
          "first_mes": "Beep, <USER>.", "mes_example": ""}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    card = read_card(tmp_path / "v1.json")
    assert (card.spec, card.opening()[1]["content"]) == ("v1", "Beep, User.")
    assert "Zed is a robot." in card.system_prompt()
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0",
          "data": {"name": "Ivy", "description": "A gardener.", "first_mes": "Hello, {{user}}!", "mes_example": "",
                   "personality": "", "scenario": "", "system_prompt": "Stay in character.", "group_only_greetings": []}}
    info = PngInfo()
    info.add_text("ccv3", base64.b64encode(json.dumps(v3).encode()).decode())
    Image.new("RGB", (8, 8)).save(tmp_path / "ivy.png", pnginfo=info)
    card = read_card(tmp_path / "ivy.png")
    assert (card.spec, card.name, card.first_message) == ("v3", "Ivy", "Hello, {{user}}!")
    assert card.system_prompt().startswith("Stay in character.\nYou are Ivy.")


def test_png_without_a_card_is_a_plain_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(DataError, match="without a character card"):
        inspect(tmp_path / "plain.png")


def test_text_for_continued_pretraining(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("The first paragraph of the book, long enough.\r\n\r\nThe second paragraph, also long enough.\r\n\r\n\r\nTiny.\r\n",
                 encoding="utf-8")
    ins = inspect(f)
    assert (ins.format, ins.kind) == ("text", "text")
    assert ins.rows == [{"text": "The first paragraph of the book, long enough."},
                        {"text": "The second paragraph, also long enough."}]
    assert ins.report.dropped == {"too_short": 1} and ins.report.dropped_rows == {"too_short": [6]}


def test_parquet_and_tsv_and_json_dict_of_columns(tmp_path):
    pd.DataFrame({"question": ["What is ice?", "What is steam?"], "answer": ["Frozen water.", "Water as a gas."]}
                 ).to_parquet(tmp_path / "qa.parquet")
    assert inspect(tmp_path / "qa.parquet").report.rows_kept == 2
    (tmp_path / "qa.tsv").write_text("prompt\tresponse\nName a colour, please\tBlue, like the sky.\n", encoding="utf-8")
    assert inspect(tmp_path / "qa.tsv").rows[0]["messages"][1]["content"] == "Blue, like the sky."
    (tmp_path / "cols.json").write_text(json.dumps({"prompt": ["Say one", "Say two"], "response": ["One, as asked.", "Two, as asked."]}))
    ins = inspect(tmp_path / "cols.json")
    assert ins.report.rows_kept == 2 and "Read as a table of columns." in ins.report.notes
    (tmp_path / "single.json").write_text(json.dumps({"messages": msgs(("user", "Hello there!"), ("assistant", "Hi, how can I help?"))}))
    assert inspect(tmp_path / "single.json").report.rows_kept == 1


@pytest.mark.parametrize("encoding,prefix", [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                             ("utf-16-le", b"")])
def test_bom_utf16_and_crlf(tmp_path, encoding, prefix):
    lines = [json.dumps({"prompt": f"Quelle heure est-il à {city} ?", "response": "Il est midi, à peu près."}, ensure_ascii=False)
             for city in ("Paris", "Lyon", "Nice")]
    f = tmp_path / "x.jsonl"
    f.write_bytes(prefix + "\r\n".join(lines).encode(encoding))
    ins = inspect(f)
    assert ins.report.rows_kept == 3 and ins.report.errors == []
    assert ins.rows[0]["messages"][1]["content"] == "Il est midi, à peu près."


def test_jsonl_saved_as_json_and_csv_with_messages_column(tmp_path):
    row = {"messages": msgs(("user", "Hi, who are you?"), ("assistant", "A small model."))}
    f = tmp_path / "lines.json"
    other = {"messages": msgs(("user", "Hi, what are you?"), ("assistant", "A small model."))}
    f.write_text(json.dumps(row) + "\n" + json.dumps(other) + "\n")
    assert inspect(f).report.rows_kept == 2
    pd.DataFrame({"messages": [json.dumps(row["messages"])]}).to_csv(tmp_path / "m.csv", index=False)
    ins = inspect(tmp_path / "m.csv")
    assert (ins.format, ins.rows) == ("messages", [row])


def test_override_format_mapping_and_system_prompt(tmp_path):
    f = tmp_path / "odd.csv"
    f.write_text("q,a,notes\nWhat do cats eat?,Mostly meat.,x\nWhy is grass green?,Chlorophyll.,y\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        inspect(f)
    assert "Columns seen: q, a, notes" in str(e.value) and "alpaca" in str(e.value) and "pairs" in str(e.value)
    ins = inspect(f, Options(format="pairs", mapping={"prompt": "q", "response": "a"}, system_prompt="You are a vet."))
    assert ins.rows[0]["messages"] == msgs(("system", "You are a vet."), ("user", "What do cats eat?"), ("assistant", "Mostly meat."))
    with pytest.raises(DataError, match="no column 'question'.*q, a, notes"):
        inspect(f, Options(format="pairs", mapping={"prompt": "question", "response": "a"}))
    with pytest.raises(DataError, match="choose the column for: prompt"):
        inspect(f, Options(format="pairs", mapping={"response": "a"}))


def test_rules_drop_with_reasons_and_row_numbers(tmp_path):
    rows = [
        {"messages": msgs(("user", "A proper question here?"), ("assistant", "A proper answer here."))},
        {"messages": msgs(("user", "No reply to this one at all"))},
        {"messages": msgs(("assistant", "A reply with no question before it"))},
        {"messages": []},
        {"messages": msgs(("user", "Hi"), ("assistant", "Yo"))},
        {"messages": msgs(("narrator", "Once upon a time"), ("assistant", "..."))},
        {"messages": msgs(("system", "Be nice."), ("user", "Another proper question?"), ("assistant", "Another proper answer."))},
    ]
    f = write_jsonl(tmp_path / "r.jsonl", rows)
    report = inspect(f).report
    assert (report.rows_in, report.rows_kept) == (7, 2)
    assert report.dropped_rows == {"no_assistant_reply": [2], "no_user_turn": [3], "empty": [4], "too_short": [5], "malformed": [6]}
    assert report.errors == [{"line": 6, "message": "Line 6: turn 1 has an unknown speaker 'narrator' (known: user, assistant, system, tool and their aliases)"}]
    strict = inspect(f, Options(rules=Rules(min_chars=1, require_system=True))).report
    assert strict.rows_kept == 1 and strict.dropped["no_system_turn"] == 2


def test_exact_duplicates_are_dropped_naming_the_kept_copy_unless_kept(tmp_path):
    one = {"messages": msgs(("user", "What is the tallest mountain?"), ("assistant", "Mount Everest, 8849 metres."))}
    near = {"messages": msgs(("user", "What is the tallest mountain?"), ("assistant", "Mount Everest, 8,849 metres."))}
    other = {"instruction": "What is the tallest mountain?", "output": "Mount Everest, 8849 metres."}
    f = write_jsonl(tmp_path / "dup.jsonl", [one, near, one, {"messages": one["messages"]}, one])
    ins = inspect(f)
    assert ins.rows == [one, near] and ins.report.dropped_rows == {"duplicate": [3, 4, 5]}
    assert ins.report.errors[0] == {"line": 3, "message": "Line 3 is the same conversation as line 1, which is kept."}
    assert any("Exact duplicates are left out" in n for n in ins.report.notes)
    assert inspect(f, Options(keep_duplicates=True)).report.rows_kept == 5
    # the same conversation in another shape is a duplicate too: it would train the same tokens
    g = write_jsonl(tmp_path / "alpaca.jsonl", [other, other, {**other, "input": ""}])
    assert inspect(g).report.dropped_rows == {"duplicate": [2, 3]}


def test_cli_inspect_reports_duplicates_and_keeps_them_on_request(tmp_path):
    row = {"prompt": "How many moons has Mars?", "response": "Two: Phobos and Deimos."}
    f = write_jsonl(tmp_path / "dup.jsonl", [row, row])
    root = Path(__file__).resolve().parent.parent

    def run(*extra):
        done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(f), "--no-render", *extra],
                              cwd=root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = run()
    assert "Lines: 2 in, 1 kept, 1 dropped" in out and "Line 2 is the same conversation as line 1, which is kept." in out
    assert "Lines: 2 in, 2 kept, 0 dropped" in run("--keep-duplicates")


def test_duplicates_from_one_record_are_found_too(tmp_path):
    block = "<START>\n{{user}}: Hi there, captain!\n{{char}}: Ahoy, welcome aboard the Gull!\n"
    card = {"spec": "chara_card_v2", "spec_version": "2.0",
            "data": {"name": "Bess", "description": "{{char}} is a pirate captain.", "personality": "", "scenario": "",
                     "first_mes": "Ahoy!", "mes_example": block + block}}
    (tmp_path / "bess.json").write_text(json.dumps(card))
    ins = inspect(tmp_path / "bess.json")
    assert ins.format == "character_card" and ins.report.dropped.get("duplicate") == 1
