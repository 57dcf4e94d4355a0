"""Data reading benchmark, for the two targets of the data issue:

1. 50,000 Alpaca rows read, detected and converted within 1 s (a JSON list, as alpaca_data.json is
   shipped, and the same rows as JSONL), with every shape's detection, the image check and the
   duplicate check of issue 18; and 50,000 HH-RLHF-style preference pairs (transcripts) the same way;
2. a 200 MB JSONL imported with a progress bar (`python -m engine data import`, a real subprocess)
   without holding more than about twice its size in memory: the peak RSS of the command is
   compared with the same command on a 1-row file (the interpreter and its libraries);
3. the bounds of issue 15: a JSONL with one 50 MB line (skipped, memory flat) and a CSV with
   100,000 columns (refused at once), with the time and the peak memory of each read.

The files are generated in a temporary folder (deterministic text) and deleted afterwards.
Writes bench/results/<date>-data-read.json.

    .venv/bin/python bench/data_read.py [--alpaca-rows 50000] [--jsonl-mb 200]   (--jsonl-mb 0: no big import)
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402

WORDS = ("the a ship sea wind sail captain crew harbour island map treasure gold storm wave star north south "
         "learn write read cook sleep walk river mountain city garden bread water light quick slow bright dark "
         "because although when where which every small large old new first last good kind brave").split()


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def alpaca_rows(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"instruction": sentence(rng, 5, 20), "input": sentence(rng, 3, 30) if rng.random() < 0.4 else "",
             "output": " ".join(sentence(rng, 5, 25) for _ in range(rng.randint(1, 6)))} for _ in range(n)]


def hh_rows(n: int) -> list[dict]:
    """Preference pairs as Anthropic's HH-RLHF writes them: two transcripts, the last reply differing."""
    rng, rows = random.Random(2), []
    for _ in range(n):
        talk = "".join(f"\n\nHuman: {sentence(rng, 5, 20)}\n\nAssistant: {sentence(rng, 5, 30)}" for _ in range(rng.randint(0, 2)))
        talk += f"\n\nHuman: {sentence(rng, 5, 20)}\n\nAssistant: "
        rows.append({"chosen": talk + sentence(rng, 8, 40), "rejected": talk + sentence(rng, 3, 20)})
    return rows


def write_big_jsonl(path: Path, megabytes: int) -> int:
    rng, rows, size = random.Random(1), 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while size < megabytes * 1024 * 1024:
            turns = []
            for _ in range(rng.randint(1, 4)):
                turns += [{"role": "user", "content": sentence(rng, 5, 25)},
                          {"role": "assistant", "content": " ".join(sentence(rng, 5, 25) for _ in range(rng.randint(1, 5)))}]
            line = json.dumps({"messages": turns}) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            rows += 1
    return rows


def peak_kib() -> int:
    """This process's peak resident memory, in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def run_python(code: str) -> dict:
    """Run `code` in a fresh interpreter (no other data in memory); it prints one JSON object last."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_inspect(path: Path) -> dict:
    """inspect() in a fresh interpreter: its time, and how far the read raised the peak resident memory."""
    return run_python(
        "import json, time, psutil\nfrom bench.data_read import peak_kib\nfrom engine.data import DataError, inspect\n"
        "before = psutil.Process().memory_info().rss\nstarted, cpu = time.perf_counter(), time.process_time()\n"
        f"try:\n    found = inspect({str(path)!r})\nexcept DataError as e:\n    found = e\n"
        "seconds = time.perf_counter() - started\ngrowth = {'seconds': round(seconds, 2), "
        "'cpu_seconds': round(time.process_time() - cpu, 2), "
        "'peak_growth_mb': round((peak_kib() * 1024 - before) / 2**20, 1)}\n"
        "if isinstance(found, DataError):\n    print(json.dumps({**growth, 'refused': str(found)}))\nelse:\n"
        "    print(json.dumps({**growth, 'format': found.format, 'rows_kept': found.report.rows_kept,"
        " 'rows_per_s': round(found.report.rows_kept / seconds), 'errors': found.report.errors[:3]}))"
    )


def write_huge_line(path: Path, megabytes: int = 50) -> None:
    good = json.dumps({"prompt": "What is the boiling point of water?", "response": "100 degrees Celsius at sea level."})
    with open(path, "w", encoding="utf-8") as f:
        f.write(good + "\n" + '{"prompt": "long", "response": "' + "x" * (megabytes * 2**20) + '"}\n'
                + good.replace("water", "sea water") + "\n")


def write_wide_csv(path: Path, columns: int) -> None:
    """A prompt and a reply column, then columns of nothing a data set needs."""
    names = ["prompt", "response", *(f"c{i}" for i in range(columns - 2))]
    values = ["What is the boiling point of water?", "100 degrees Celsius at sea level.", *["1"] * (columns - 2)]
    path.write_text(",".join(names) + "\n" + ",".join(values) + "\n")


def engine_import(path: Path, workspace: Path) -> dict:
    """The data engine alone (no torch): import_file's peak RSS."""
    return run_python(
        "import json, time\nfrom bench.data_read import peak_kib\nfrom engine.data.store import import_file\n"
        "from engine.workspace import Workspace\nbefore = peak_kib()\nstarted = time.perf_counter()\n"
        f"import_file(Workspace.from_env({str(workspace)!r}), 'engine-only', {str(path)!r})\n"
        "print(json.dumps({'seconds': round(time.perf_counter() - started, 1), 'rss_before_mb': round(before / 1024),"
        " 'peak_rss_mb': round(peak_kib() / 1024)}))"
    )


def cli_import(path: Path, workspace: Path, name: str) -> dict:
    """Run the real CLI and report its peak RSS (VmHWM: ru_maxrss would carry this parent's peak over exec)."""
    started = time.perf_counter()
    command = [sys.executable, "-c", f"import sys, runpy\nsys.path.insert(0, {str(ROOT)!r})\n"
               "from bench.data_read import peak_kib\nsys.argv = ['engine', *sys.argv[1:]]\n"
               "try:\n    runpy.run_module('engine', run_name='__main__')\n"
               "finally:\n    print('PEAK_KIB', peak_kib(), file=sys.stderr)",
               "data", "import", str(path), "--name", name, "--workspace", str(workspace)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    peak = int(done.stderr.rsplit("PEAK_KIB", 1)[1].split()[0]) * 1024
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20), "progress_bar": "Reading" in done.stderr,
            "stdout_tail": done.stdout.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpaca-rows", type=int, default=50_000)
    parser.add_argument("--jsonl-mb", type=int, default=200)
    args = parser.parse_args()
    result = {"date": datetime.date.today().isoformat(), "machine": describe()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = alpaca_rows(args.alpaca_rows)
        (tmp / "alpaca.json").write_text(json.dumps(rows, indent=4), encoding="utf-8")
        (tmp / "alpaca.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        del rows
        (tmp / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hh_rows(args.alpaca_rows)), encoding="utf-8")
        for name in ("alpaca.json", "alpaca.jsonl", "hh.jsonl"):
            result[name] = {"mb": round((tmp / name).stat().st_size / 2**20, 1), **time_inspect(tmp / name)}
            print(name, result[name], flush=True)

        write_huge_line(tmp / "huge-line.jsonl")
        write_wide_csv(tmp / "wide-100000.csv", 100_000)
        write_wide_csv(tmp / "wide-1000.csv", 1000)  # at the column limit: read, not refused
        for name in ("huge-line.jsonl", "wide-100000.csv", "wide-1000.csv"):
            result[name] = {"mb": round((tmp / name).stat().st_size / 2**20, 1), **time_inspect(tmp / name)}
            print(name, result[name], flush=True)
        if not args.jsonl_mb:
            return _write(result)

        big = tmp / "big.jsonl"
        big_rows = write_big_jsonl(big, args.jsonl_mb)
        (tmp / "one.jsonl").write_text(big.open(encoding="utf-8").readline(), encoding="utf-8")
        baseline = cli_import(tmp / "one.jsonl", tmp / "ws", "one")
        imported = cli_import(big, tmp / "ws", "big")
        size_mb = big.stat().st_size / 2**20
        result["big.jsonl"] = {
            "mb": round(size_mb), "rows": big_rows, "cli": imported, "cli_one_row_peak_rss_mb": baseline["peak_rss_mb"],
            "cli_growth_mb": imported["peak_rss_mb"] - baseline["peak_rss_mb"],
            "engine_only": engine_import(big, tmp / "ws"),
        }
        print("big.jsonl", result["big.jsonl"], flush=True)
    _write(result)


def _write(result: dict) -> None:
    out = ROOT / "bench" / "results" / f"{result['date']}-data-read.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
