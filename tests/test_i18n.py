"""The locale table against the code: every text marked for translation has its Chinese, with the same
{fields}; no entry is left over; and the translated UI modules hold no text for people outside `_()`/`t()`."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
import yaml

from engine.i18n import CHINESE, msg, table, tr
from ui.i18n import from_header

ROOT = Path(__file__).resolve().parent.parent
MARKERS = {"_", "t", "msg"}
# Every ui module shows its text through `_()`/`t()`; the scan below holds each to it. ui/api.py is the
# OpenAI-compatible API, which answers in English.
TRANSLATED_UI = sorted(p.name for p in (ROOT / "ui").glob("*.py") if p.name != "api.py")
# Component arguments a person reads, and components whose first argument is shown.
SHOWN_KWARGS = {"label", "info", "placeholder", "desc"}
SHOWN_FIRST = {"Markdown", "Button", "Tab", "Error", "Warning", "Info", "LoginButton", "UploadButton"}
NAMES = {"LoRA", "GGUF", "Ollama", "English", "简体中文", "transformers + peft"}


def _sources(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments (texts passed to t() by name)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def marked_texts() -> dict[str, Path]:
    """Every English template given to _(), t() or msg() as a literal (or a module constant)."""
    found = {}
    for path in _sources("ui", "engine"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in MARKERS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.BoolOp):  # _(problem or "default text")
                    arg = arg.values[-1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found[arg.value] = path
                elif isinstance(arg, ast.Name) and arg.id in constants:
                    found[constants[arg.id]] = path
    return found


def test_static_text_has_no_braces():
    """The browser's I18n formats a `_()` key as a message with {fields}: a brace in one shows the raw key
    (`i18n{"type": "translation_metadata", ...}`) in the page, in either language."""
    braced = []
    for path in _sources("ui"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _name(node.func) == "_" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "{" in arg.value:
                    braced.append(f"{path.name}:{node.lineno}")
    assert not braced, braced


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_every_marked_text_has_its_chinese():
    missing = sorted(text for text in marked_texts() if text not in table())
    assert not missing, f"no Chinese in engine/locales/zh-CN.yaml for: {missing}"


def test_chinese_keeps_the_same_fields():
    wrong = {en: zh for en, zh in table().items() if _fields(en) != _fields(zh)}
    assert not wrong, f"fields differ between English and Chinese: {wrong}"


def test_no_entry_without_its_text_in_the_code():
    literals = set()
    for path in _sources("ui", "engine"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    for path in (ROOT / "engine").rglob("*.yaml"):  # or the engine's data files' texts
        if path.name != "zh-CN.yaml":
            literals.update(_texts(yaml.safe_load(path.read_text(encoding="utf-8"))))
    orphans = sorted(en for en in table() if en not in literals)
    assert not orphans, f"entries in zh-CN.yaml that no code uses any more: {orphans}"


def _texts(data) -> list[str]:
    """Every string of a parsed YAML document, its keys too (a preset's name)."""
    if isinstance(data, dict):
        return [t for k, v in data.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(data, list):
        return [t for v in data for t in _texts(v)]
    return [data] if isinstance(data, str) else []


def _shown_literals(path: Path) -> list[str]:
    """Text for people written as a bare literal: a shown component argument, a message, or a string a
    function returns (a plain or f-string), where it is not inside _(), t() or msg()."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside_marker = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in MARKERS:
            inside_marker.update(id(n) for n in ast.walk(node))

    def prose(node) -> bool:
        if id(node) in inside_marker:
            return False
        if isinstance(node, ast.JoinedStr):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.strip()
            return any(c.isalpha() for c in text) and text not in NAMES
        return False

    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            candidates = [kw.value for kw in node.keywords if kw.arg in SHOWN_KWARGS]
            if _name(node.func) in SHOWN_FIRST and node.args:
                candidates.append(node.args[0])
            for value in candidates:
                values = value.values if isinstance(value, ast.BoolOp) else [value]
                bad += [ast.unparse(v) for v in values if prose(v)]
        elif isinstance(node, ast.Return) and node.value is not None:
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            bad += [ast.unparse(v) for v in values if prose(v)]
    return bad


@pytest.mark.parametrize("module", TRANSLATED_UI)
def test_translated_ui_module_shows_no_bare_text(module):
    assert _shown_literals(ROOT / "ui" / module) == []


def test_the_scan_finds_bare_text(tmp_path):
    """The scan itself: each kind of bare text it is meant to catch is caught, marked text is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        'import gradio as gr\n'
        'def handler(n):\n'
        '    gr.Markdown("Hello there")\n'
        '    gr.Textbox(label="Name", info=_("Marked"), placeholder="type here")\n'
        '    gr.Warning(f"{n} rows")\n'
        '    return t("Saved {n}.", n=n), "Done."\n'
    )
    assert sorted(_shown_literals(sample)) == sorted(["'Hello there'", "'Name'", "'type here'", "f'{n} rows'", "'Done.'"])


def test_a_message_renders_in_either_language():
    saved = msg("Loaded {model}.", model="tiny")
    assert saved == "Loaded tiny." and tr(saved, CHINESE) == "已加载 tiny。" and tr(saved, "en") == "Loaded tiny."


@pytest.mark.parametrize("header, lang", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"), ("en-US,en;q=0.9", "en"), ("fr-FR,en;q=0.5,zh;q=0.9", "zh-CN"),
    ("de-DE", "en"), ("", "en"), (None, "en"),
])
def test_the_browser_language_picks_ours(header, lang):
    assert from_header(header) == lang
