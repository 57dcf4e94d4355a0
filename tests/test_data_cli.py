"""`python -m engine data inspect|import` through a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "data"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "engine", "data", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_inspect_json_reports_format_counts_errors_and_the_rendered_example(workspace, tmp_path):
    f = tmp_path / "mixed.jsonl"
    good = {"messages": [{"role": "user", "content": "Hello, who are you?"}, {"role": "assistant", "content": "A pirate. Arr, matey!"}]}
    f.write_text("\n".join([json.dumps(good), "{broken", json.dumps({"messages": good["messages"][:1]})]) + "\n")
    done = run("inspect", f, "--json", "--workspace", workspace.root)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["format"], out["rows_in"], out["rows_kept"]) == ("messages", 3, 1)
    assert out["dropped"] == {"unreadable": 1, "no_assistant_reply": 1}
    assert out["errors"][0]["line"] == 2 and "not valid JSON" in out["errors"][0]["message"]
    assert out["example"] == good["messages"]
    assert [piece for piece, trained in out["rendered"]["segments"] if trained] == ["A pirate. Arr, matey!<|im_end|>"]


def test_inspect_text_marks_trained_tokens(workspace):
    done = run("inspect", EXAMPLES / "alpaca_sample.json", "--workspace", workspace.root, "--template", "alpaca")
    assert done.returncode == 0, done.stderr
    assert "Format: alpaca (confidence 100%)" in done.stdout and "Rows: 12 in, 12 kept, 0 dropped" in done.stdout
    assert "### Response:\n[[1. Eat a balanced diet" in done.stdout


def test_unreadable_file_exits_non_zero_with_a_plain_message(tmp_path):
    f = tmp_path / "garbage.bin"
    f.write_bytes(bytes(range(256)) * 8)
    done = run("inspect", f, "--no-render")
    assert done.returncode == 2
    assert done.stderr.startswith("Error: 'garbage.bin' does not look like a text file") and "Traceback" not in done.stderr


def test_import_saves_to_the_workspace(tmp_path):
    ws = tmp_path / "ws"
    done = run("import", EXAMPLES / "pirate.jsonl", "--name", "pirate", "--workspace", ws)
    assert done.returncode == 0, done.stderr
    assert "Saved 108 rows as 'pirate'" in done.stdout
    meta = json.loads((ws / "datasets" / "pirate" / "meta.json").read_text())
    assert meta["counts"]["rows_kept"] == 108
