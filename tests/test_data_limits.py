"""Bounded work on every input: each limit of engine/data/limits.py refuses with a sentence saying
what was wrong and what to do, and keeps everything valid around it."""

import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from engine.data import DataError, Options, inspect, read_card
from engine.data.detect import detect
from engine.data.limits import MAX_CARD_CHUNK_BYTES, MAX_COLUMNS, MAX_DEPTH, MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parent.parent
CARD = ROOT / "examples" / "cards" / "captain_bess.png"
GOOD = {"prompt": "What is the boiling point of water?", "response": "100 degrees Celsius at sea level."}


def test_a_50_mb_line_is_skipped_and_memory_stays_flat(tmp_path):
    f = tmp_path / "huge_line.jsonl"
    with open(f, "w", encoding="utf-8") as out:
        out.write(json.dumps(GOOD) + "\n")
        out.write('{"prompt": "long", "response": "' + "x" * (50 * 2**20) + '"}\n')
        out.write(json.dumps(GOOD) + "\n")
    # A fresh interpreter, so that its peak resident memory is this read's alone. The peak is the
    # kernel's VmHWM (psutil has no peak on Linux; ru_maxrss would carry pytest's own peak over exec).
    code = (
        "import json, psutil, sys\nfrom engine.data import Options, inspect\n"
        "before = psutil.Process().memory_info().rss\nfound = inspect(sys.argv[1], Options(keep_duplicates=True))\n"
        "peak = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(json.dumps({'growth': peak - before, 'kept': found.report.rows_kept, 'errors': found.report.errors}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(f)], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kept"] == 2
    assert result["errors"] == [{"line": 2, "message": "Line 2 is 50.0 MB long, over the limit of 4.0 MB for one record "
                                 "(far more than a model trains on at once); split it into several records."}]
    assert result["growth"] < 4 * MAX_LINE_BYTES, f"the read grew the process by {result['growth'] / 2**20:.0f} MB"


def test_a_long_text_block_is_dropped_with_its_line(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("A first paragraph that is long enough to keep.\n\n" + "word " * (MAX_LINE_BYTES // 4) + "\n\nThe end of it all, kept too.\n")
    found = inspect(f)
    assert found.report.rows_kept == 2
    assert found.report.errors[0]["line"] == 3 and "over the limit of 4.0 MB" in found.report.errors[0]["message"]


def test_a_100000_column_csv_is_refused_at_once(tmp_path):
    f = tmp_path / "wide.csv"
    f.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("1" * 100_000) + "\n")
    started = time.perf_counter()
    with pytest.raises(DataError) as e:
        inspect(f)
    assert time.perf_counter() - started < 10
    assert str(e.value) == (f"'wide.csv' has 100,000 columns, over the limit of {MAX_COLUMNS:,}. A data set needs a few "
                            "(e.g. prompt and response); keep only those columns, or check that the separator is right.")


def test_records_with_too_many_keys_are_refused(tmp_path):
    f = tmp_path / "wide.jsonl"
    f.write_text(json.dumps({**GOOD, **{f"k{i}": i for i in range(MAX_COLUMNS)}}) + "\n")
    with pytest.raises(DataError, match=f"has {MAX_COLUMNS + 2:,} columns, over the limit"):
        inspect(f)


def test_a_csv_at_the_column_limit_is_read(tmp_path):
    f = tmp_path / "wide.csv"
    names = ["prompt", "response", *(f"c{i}" for i in range(MAX_COLUMNS - 2))]
    f.write_text(",".join(names) + "\n" + ",".join([GOOD["prompt"], GOOD["response"], *["x"] * (MAX_COLUMNS - 2)]) + "\n")
    found = inspect(f)
    assert found.format == "pairs" and found.report.rows_kept == 1


def _detect_seconds(columns: int) -> float:
    records = [{**GOOD, **{f"c{i}": "x" for i in range(columns)}} for _ in range(5)]
    started = time.perf_counter()
    assert detect(records).format == "pairs"
    return time.perf_counter() - started


def test_detection_time_grows_linearly_with_the_columns():
    _detect_seconds(1000)  # warm up
    small, large = min(_detect_seconds(10_000) for _ in range(2)), min(_detect_seconds(100_000) for _ in range(2))
    assert large / small < 25, f"10x the columns took {large / small:.0f}x the time (quadratic would be about 100x)"


def test_json_nested_100000_deep(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError) as e:
        inspect(f)
    assert str(e.value) == (f"Row 1 of 'deep.json' holds lists or objects nested more than {MAX_DEPTH} levels deep; "
                            "no record shape needs that. Flatten it.")
    f = tmp_path / "deep_object.json"
    f.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(DataError, match=f"'deep_object.json' cannot be read: it holds lists or objects nested more than {MAX_DEPTH}"):
        inspect(f)


def test_a_deep_jsonl_line_is_reported_and_the_rest_kept(tmp_path):
    f = tmp_path / "deep.jsonl"
    deep = '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + ', "response": "x"}'
    f.write_text("\n".join([json.dumps(GOOD), deep, json.dumps(GOOD)]) + "\n")
    found = inspect(f, Options(keep_duplicates=True))
    assert found.report.rows_kept == 2
    assert found.report.errors == [{"line": 2, "message": f"Line 2 cannot be read: it holds lists or objects nested more "
                                    f"than {MAX_DEPTH} levels deep; no record shape needs that. Flatten it."}]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_bad_png_cards_get_our_sentences_not_pillows(tmp_path):
    good = CARD.read_bytes()
    assert read_card(CARD).name == "Captain Barnacle Bess"
    cases = {
        "cut.png": (good[: len(good) // 2], "the file is cut short"),
        "noise.png": (good[:8] + b"\x00\x00\x00\x0dIHDR" + bytes(range(256)) * 4, "the file is cut short"),
        "crc.png": (good[:8] + _chunk(b"tEXt", b"chara\0e30=")[:-4] + b"\0\0\0\0" + _chunk(b"IEND", b""),
                    "a text chunk is damaged (its checksum does not match)"),
        "big.png": (good[:8] + struct.pack(">I", MAX_CARD_CHUNK_BYTES + 1) + b"tEXtchara\0", "a text chunk is 8.0 MB, over the limit of 8.0 MB"),
        "zip.png": (good[:8] + _chunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (MAX_CARD_CHUNK_BYTES + 10))) + _chunk(b"IEND", b""),
                    "a compressed text chunk holds over 8.0 MB"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            read_card(tmp_path / name)
        assert str(e.value) == f"'{name}' could not be read as a PNG image: {reason}. Export the card again, as PNG or JSON."
    (tmp_path / "not_json.png").write_bytes(good[:8] + _chunk(b"tEXt", b"chara\0bm90IGpzb24=") + _chunk(b"IEND", b""))
    with pytest.raises(DataError, match="The character card inside 'not_json.png' is damaged: its text is not a card's JSON"):
        read_card(tmp_path / "not_json.png")
    (tmp_path / "plain.png").write_bytes(good[:8] + _chunk(b"IEND", b""))
    with pytest.raises(DataError, match="is a PNG without a character card in it"):
        read_card(tmp_path / "plain.png")


def test_a_compressed_itxt_card_is_read(tmp_path):
    card = json.dumps({"spec": "chara_card_v2", "data": {"name": "Zora", "first_mes": "Hello, traveller."}})
    import base64

    text = zlib.compress(base64.b64encode(card.encode()))
    f = tmp_path / "itxt.png"
    f.write_bytes(CARD.read_bytes()[:8] + _chunk(b"iTXt", b"chara\0\1\0\0\0" + text) + _chunk(b"IEND", b""))
    assert read_card(f).first_message == "Hello, traveller."
