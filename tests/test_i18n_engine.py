"""The engine's messages in Simplified Chinese: real messages rendered in zh-CN read as Chinese, every
template written in engine/ has its Chinese, and the command line speaks Chinese when LANG says so."""

from __future__ import annotations

import ast
import json
import os
import re
import string
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from engine.data import RECORD_FORMATS
from engine.data.errors import DataError
from engine.data.pipeline import Options, inspect
from engine.access import MODEL_PLACES
from engine.errors import _OS, plain
from engine.export.catalog import EXPORT_FORMATS
from engine.i18n import CHINESE, JOINS, Message, table, tr
from engine.data.rules import REASONS
from engine.train.estimate import timing
from engine.train.config import RunConfig
from engine.train.plan import FITS, TIGHT, WONT_FIT
from engine.train.presets import presets
from engine.train.status import State
from engine.workspace import BadName, Workspace

ROOT = Path(__file__).resolve().parent.parent
# Words that stay as they are in Chinese: names, formats, options, fields of a file.
NAMES = {"LoRA", "QLoRA", "GGUF", "Ollama", "ChatML", "Alpaca", "JSON", "JSONL", "CSV", "TSV", "UTF", "DPO",
         "ORPO", "KTO", "GB", "MB", "KB", "GiB", "PNG", "SillyTavern", "Hub", "CPU", "GPU", "CUDA", "NVIDIA",
         # the jargon kept beside its Chinese the first time, as the tutorial's readers will meet it elsewhere
         "loss", "rank", "epoch", "alpha", "dropout", "logits", "chosen", "rejected"}


def english_words(text: str, allowed: set[str] = frozenset()) -> set[str]:
    """Words of Latin letters in `text` that are not names, file names, paths or command-line options."""
    text = re.sub(r"'[^']*'|`[^`]*`|\S*[/\\.\d-]\S*|\{[^}]*\}", " ", text)  # quoted, paths, options, ids
    return {w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in NAMES | set(allowed)}


def chinese(message) -> str:
    assert isinstance(message, Message), f"not a Message: {message!r}"
    return tr(message, CHINESE)


def test_a_data_report_reads_in_chinese(tmp_path):
    f = tmp_path / "chats.jsonl"
    rows = [{"instruction": "Say hello like a pirate.", "output": "Ahoy there, matey! Welcome aboard."}] * 2
    rows.append({"instruction": "Hi", "output": "Yo"})
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = inspect(f, Options()).report
    summary = report.summary()
    assert summary.startswith("Lines: 3 in, 1 kept, 2 dropped")  # the English stays as it was
    zh = chinese(summary)
    assert "共 3 行" in zh and "保留 1" in zh and "第 2 行" in zh and "第 3 行" in zh, zh
    assert not english_words(zh), zh


def test_a_refused_name_reads_in_chinese(tmp_path):
    ws = Workspace.from_env(tmp_path)
    with pytest.raises(BadName) as caught:
        ws.run_path("../secrets")
    assert str(caught.value).startswith("'../secrets' cannot be a run name")
    zh = chinese(caught.value.args[0])
    assert "运行名称" in zh and "'../secrets'" in zh, zh
    assert not english_words(zh), zh


def test_a_wide_tables_column_list_reads_in_chinese():
    from engine.data.detect import detect

    detection = detect([{f"field{i}": "x" for i in range(25)}] * 2)
    note = detection.evidence[0]
    assert "field19 and 5 more" in note, note
    zh = chinese(note)
    assert "field19，另有 5 列" in zh and "and" not in zh, zh


def test_a_missing_data_set_reads_in_chinese(tmp_path):
    with pytest.raises(DataError) as caught:
        inspect(tmp_path / "nowhere.jsonl", Options())
    zh = chinese(caught.value.args[0])
    assert "nowhere.jsonl" in zh and not english_words(zh), zh


@pytest.mark.parametrize("code", sorted(_OS))
def test_a_failure_of_the_machine_reads_in_chinese(code):
    said = plain(OSError(code, os.strerror(code), "/data/runs/pirate"))
    assert str(said).startswith(_OS[code].split("{where}")[0])
    zh = chinese(said)
    assert "/data/runs/pirate" in zh or "{where}" not in _OS[code], zh
    assert not english_words(zh), zh


def test_a_run_verdict_reads_in_chinese(new_workspace, tiny_model_path):
    from engine.train.runs import load_run
    from engine.train.verdict import judge
    from tests.compare_runs import trained_run

    ws = new_workspace("i18n-verdict", model=False)
    trained_run(ws, "tiny", tiny_model_path)
    said = judge(load_run(ws, "tiny")).markdown()
    assert said.startswith("#### How it went\n- The loss ended at")
    zh = chinese(said)
    assert zh.startswith("#### 训练结果\n- 损失（loss）最终为") and not english_words(zh), zh


def test_the_advice_on_settings_reads_in_chinese():
    from engine.train.advice import advice_notes, memory_advice
    from engine.train.config import validate

    config = validate({"model": {"name_or_path": "tiny", "max_seq_length": 1024}, "dataset": "pirate",
                       "lora": {"r": 128, "alpha": 7, "dropout": 0.0},
                       "train": {"epochs": 20, "learning_rate": 1e-3, "batch_size": 4}})
    notes = advice_notes(config, rows=100)
    assert len(notes) == 5
    for said in [*notes, memory_advice(config, can_4bit=True)]:
        zh = chinese(said)
        assert not english_words(zh), zh
    assert "把批次大小设为 2，梯度累积设为" in chinese(memory_advice(config, can_4bit=True))


def test_a_presets_choices_read_in_chinese_on_the_form():
    """The Train form's help of each setting a preset chose (its advice, then why the preset chose that
    value) and the preset's own help, as a Chinese page shows them, in the browser's table too."""
    from engine.train import estimate, form
    from ui.i18n import I18N, _

    names = {"AdamW", "Weights", "Biases", "MLP", "token", "beta", "dpo", "linear", "cosine"}  # and a bench section:
    for name, preset in presets().items():
        shown = chinese(estimate.preset_help(name)).replace("The Quick test from Start to the end", "")
        assert not english_words(shown, names), shown
        for path in preset.why:
            help = form.setting(path, name).help
            zh = chinese(help)
            assert zh.startswith(chinese(form.setting(path).help)) and tr(preset.title, CHINESE) in zh, zh
            assert not english_words(zh, names), zh
            _(help)
            assert I18N.translations[CHINESE][help] == zh


@pytest.mark.parametrize("fmt", ["gguf-q8_0", "adapter", "merged16"])
def test_the_steps_after_a_download_read_in_chinese(fmt):
    from engine.export.download import steps

    zh = chinese(steps("Pirate-v1", fmt, "default"))
    assert f"unzip Pirate-v1-{fmt}.zip" in zh and zh.startswith("**用")
    if fmt.startswith("gguf-"):
        assert "ollama create pirate-v1 -f Modelfile" in zh
    assert not english_words(re.sub(r"```.*?```", " ", zh, flags=re.S), {"Ollama", "Python", "zip", "transformers", "LM", "Studio"}), zh


def test_the_command_line_speaks_chinese_when_lang_says_zh(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"What is {n} plus {n}?", "response": f"It is {2 * n}, of course."})
                           for n in range(3)) + "\n", encoding="utf-8")
    env = {**os.environ, "LANG": "zh_CN.UTF-8", "LC_ALL": "zh_CN.UTF-8"}
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(f), "--no-render"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "共 3 行，保留 3" in done.stdout, done.stdout
    english = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(f), "--no-render"],
                          capture_output=True, text=True, cwd=ROOT, env=english, timeout=120)
    assert "Lines: 3 in, 3 kept, 0 dropped" in done.stdout, done.stdout


def templates() -> dict[str, str]:
    """Every template written in engine/: msg()'s first argument (both sides of a conditional), and the
    tables of templates the engine formats through msg() (errors, drop reasons, joins)."""
    found: dict[str, str] = {}

    def literals(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.IfExp):
            yield from literals(node.body)
            yield from literals(node.orelse)

    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "msg" and node.args:
                for text in literals(node.args[0]):
                    found[text] = f"{path.relative_to(ROOT)}:{node.lineno}"
    for name, values in (("engine/errors.py", _OS.values()), ("engine/data/rules.py", REASONS.values()),
                         ("engine/i18n.py", JOINS.values()), ("engine/train/plan.py", (FITS, TIGHT, WONT_FIT)),
                         ("engine/train/timing.yaml", [ref["where"] for ref in timing()["assumed"].values()]),
                         ("engine/workspace.py", ("name", "run name", "data set name")),
                         ("engine/train/status.py", typing.get_args(State)),
                         ("engine/access.py", (MODEL_PLACES, "export", "load a model", "push to the Hugging Face Hub",
                                               "start training", "unload the model"))):
        found.update({text: name for text in values})
    found.update({text: "engine/train/config.py (a setting's label or advice)" for text in settings_words(RunConfig)})
    found.update({text: "engine/export/catalog.py" for f in EXPORT_FORMATS.values() for text in (f.label, f.help)})
    found.update({text: "engine/train/presets.yaml" for p in presets().values() for text in (p.title, p.summary, *p.why.values())})
    found.update({text: "engine/train/timing.yaml" for text in (timing().get("presets") or {}).values()})
    found.update({text: "engine/data/formats.py" for f in RECORD_FORMATS.values() for text in (f.title, *f.fields.values())
                  if text not in ("Alpaca", "ShareGPT")})  # names
    return found


def settings_words(model) -> list[str]:
    """The label (title) and advice (description) of every setting of a run config, as the form shows them."""
    words = []
    for field in model.model_fields.values():
        if hasattr(field.annotation, "model_fields"):
            words += settings_words(field.annotation)
        words += [text for text in (field.title, field.description) if text]
    return words


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_every_engine_template_has_its_chinese_with_the_same_fields():
    missing = {text: where for text, where in templates().items() if text and text not in table()}
    assert not missing, "no Chinese for:\n" + "\n".join(f"{w}: {t!r}" for t, w in missing.items())
    wrong = {t: table()[t] for t in templates() if t and fields(t) != fields(table()[t])}
    assert not wrong, f"fields differ: {wrong}"


def test_the_chinese_of_the_engine_is_chinese():
    untranslated = [t for t in templates() if len(english_words(t)) > 2 and not re.search(r"[\u4e00-\u9fff]", table()[t])]
    assert not untranslated, untranslated
