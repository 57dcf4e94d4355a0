"""Encodings: Chinese files in GB18030/GBK and Big5 are read as the text they hold, the encoding named in
the report; East Asian text in another encoding is refused, naming it; UTF-8 is never taken for anything
else, and Windows-1252 stays as it was. No kept row ever holds a replacement character."""

import json
from pathlib import Path

import pytest

from engine.data import DataError, Options, inspect
from engine.data.readers import HEAD_BYTES

DATA = Path(__file__).resolve().parent / "data"


def _texts(found) -> list[str]:
    return [m["content"] for row in found.rows for m in row["messages"]]


@pytest.mark.parametrize("name, encoding, note, options, expected", [
    ("alpaca_zh_gbk.json", "gb18030", "Read as gb18030 (GBK) Chinese text.", Options(),
     ["三原色是什么？", "三原色通常指的是红色、绿色和蓝色（RGB）。它们是通过加色混合原理创建色彩的三种基础颜色。",
      "把下面的句子翻译成英文。\n\n我今天很高兴。"]),
    ("belle_gb18030.jsonl", "gb18030", "Read as gb18030 (GBK) Chinese text.", Options(),
     ["😀 心情很好，谢谢！", "“龘”字共有四十八画，由三个“龍”组成。"]),
    ("faq_gbk.csv", "gb18030", "Read as gb18030 (GBK) Chinese text.", Options(),
     ["北京著名的景点有故宫、长城、天坛和颐和园。\n其中故宫是世界上现存规模最大的宫殿建筑群。"]),
    ("faq_big5.tsv", "big5", "Read as Big5 Chinese text.",
     Options(),  # its Chinese headers 問題/回答 are found as a prompt and a reply without a mapping
     ["台灣最高的山是哪一座？", "「謝謝」的英文是 “Thank you”。"]),
])
def test_chinese_files_are_read_as_their_text(name, encoding, note, options, expected):
    found = inspect(DATA / name, options)
    assert found.source.encoding == encoding and found.report.notes == [note]
    assert found.report.errors == [] and found.report.rows_kept == found.report.rows_in == 3 - name.endswith(".csv")
    texts = _texts(found)
    assert all(text in texts for text in expected)
    assert not any("\ufffd" in text for text in texts)


def test_the_same_rows_in_utf8_are_never_taken_for_another_encoding(tmp_path):
    rows = [json.loads(line) for line in (DATA / "belle_gb18030.jsonl").read_bytes().decode("gb18030").splitlines()]
    f = tmp_path / "belle.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    found = inspect(f)
    assert found.source.encoding == "utf-8" and found.report.notes == []
    assert _texts(found) == _texts(inspect(DATA / "belle_gb18030.jsonl"))
    # A character cut by the end of the sniffed head is still UTF-8.
    pad = HEAD_BYTES - len('{"text": "') - 1
    f.write_bytes(b'{"text": "' + b"a" * pad + "长城绵延两万多公里。".encode() + b'"}\n')
    assert inspect(f).source.encoding == "utf-8"


@pytest.mark.parametrize("text, encoding, seen", [
    ("質問,回答\r\n日本の首都はどこですか？,日本の首都は東京です。\r\n", "cp932", "cp932 text (Japanese)"),
    ("질문,답변\r\n한국의 수도는 어디입니까?,한국의 수도는 서울입니다.\r\n", "euc_kr", "cp949 text (Korean)"),
])
def test_other_east_asian_encodings_are_refused_by_name(tmp_path, text, encoding, seen):
    f = tmp_path / "faq.csv"
    f.write_bytes(text.encode(encoding))
    with pytest.raises(DataError) as e:
        inspect(f)
    assert str(e.value).startswith(f"'faq.csv' is not UTF-8: it looks like {seen}.")
    assert "Save the file as UTF-8" in str(e.value)
    with pytest.raises(DataError, match=r"cp932 text \(Japanese\)"):
        inspect(DATA / "faq_shift_jis.csv")


def test_windows_1252_with_runs_of_accents_stays_windows_1252():
    found = inspect(DATA / "faq_pt_cp1252.csv", Options(format="pairs", mapping={"prompt": "pergunta", "response": "resposta"}))
    assert found.source.encoding == "cp1252" and found.report.notes == ["Read as cp1252 text."]
    assert _texts(found)[1] == "A capital do Brasil é Brasília, não o Rio."


def test_chinese_after_an_ascii_head_is_found_in_json_and_dropped_by_row_in_csv(tmp_path):
    head = [{"instruction": f"Say the number {i} in words.", "output": f"The number is {i}."} for i in range(3000)]
    zh = {"instruction": "三原色是什么？", "output": "三原色是红色、绿色和蓝色，它们可以混合出其他颜色。"}
    f = tmp_path / "late.json"
    f.write_bytes(json.dumps(head).encode()[:-1] + b", " + json.dumps(zh, ensure_ascii=False).encode("gbk") + b"]")
    assert f.stat().st_size > HEAD_BYTES
    found = inspect(f)
    assert found.source.encoding == "gb18030" and found.report.notes == ["Read as gb18030 (GBK) Chinese text."]
    assert found.report.rows_kept == 3001 and "三原色是红色、绿色和蓝色，它们可以混合出其他颜色。" in _texts(found)

    f = tmp_path / "late.csv"
    lines = ["question,answer"] + [f"What is {i} plus one?,It is {i + 1}." for i in range(4000)]
    f.write_bytes(("\n".join(lines) + "\n").encode() + "三原色是什么？,红色、绿色和蓝色。\n".encode("gbk") + b"Is this the last row?,It is the last row.\n")
    found = inspect(f)
    assert found.report.rows_kept == 4001 and found.report.dropped_rows == {"unreadable": [4002]}
    assert found.report.errors[0]["message"] == ("Line 4002 is not valid utf-8 text (byte 1); the file mixes encodings: "
                                                 "save it as UTF-8 to use this row.")
    assert not any("\ufffd" in text for text in _texts(found))


def test_a_json_file_mixing_utf8_and_another_encoding_is_refused(tmp_path):
    f = tmp_path / "mixed.json"
    f.write_bytes(json.dumps([{"prompt": "Où est la gare ?", "response": "À gauche."}], ensure_ascii=False).encode()[:-1]
                  + b',\n{"prompt": "Caf\xe9?", "response": "Oui, un caf\xe9."}]')
    with pytest.raises(DataError) as e:
        inspect(f)
    at = f.read_bytes().index(b"\xe9") + 1
    assert str(e.value) == (f"'mixed.json' is not valid utf-8 text at line 2 (byte {at}): parts of it are in different "
                            "encodings. Save the whole file as UTF-8 and try again.")
