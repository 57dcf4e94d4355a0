"""Words shown to people, in English and Simplified Chinese.

A message is written once, in English, where it is made: `msg("Saved {n} rows.", n=3)`. It is a str
(English, so logs, the CLI and tests read it as before) that also keeps its template and parameters,
so the UI renders it in the viewer's language (`tr`). The Chinese for every template lives in one
table, `engine/locales/zh-CN.yaml`, keyed by the English template (gettext's convention: the source
text is the key, so the code stays readable and a missing translation falls back to English).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from pathlib import Path

import yaml

ENGLISH, CHINESE = "en", "zh-CN"
LANGS = (ENGLISH, CHINESE)
TABLE = Path(__file__).parent / "locales" / "zh-CN.yaml"


def _from_environment() -> str:
    lang = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG") or ""
    return CHINESE if lang.lower().startswith("zh") else ENGLISH


_current: contextvars.ContextVar[str] = contextvars.ContextVar("lang", default=_from_environment())


class Message(str):
    """English text that remembers its template and parameters, to be rendered in another language."""

    template: str
    params: dict

    def __new__(cls, template: str, **params):
        text = super().__new__(cls, template.format(**params) if params else template)
        text.template, text.params = template, params
        return text

    def render(self, lang: str | None = None) -> str:
        template = translation(self.template, lang)
        params = {k: tr(v, lang) if isinstance(v, Message) else v for k, v in self.params.items()}
        return template.format(**params) if params else template


def msg(template: str, **params) -> Message:
    """A message for people: `template` is English with `{name}` fields filled from `params`."""
    return Message(template, **params)


@functools.cache
def table() -> dict[str, str]:
    """English template -> Chinese template."""
    if not TABLE.exists():
        return {}
    return yaml.safe_load(TABLE.read_text(encoding="utf-8")) or {}


def current() -> str:
    """The language of the person being answered now (set per call by the UI, or from LANG)."""
    return _current.get()


@contextlib.contextmanager
def speaking(lang: str):
    """Render messages in `lang` inside the block (the UI sets it around each call)."""
    token = _current.set(lang if lang in LANGS else ENGLISH)
    try:
        yield
    finally:
        _current.reset(token)


def translation(template: str, lang: str | None = None) -> str:
    lang = lang or current()
    if lang == CHINESE:
        return table().get(template, template)
    return template


def tr(text, lang: str | None = None) -> str:
    """`text` in `lang` (default: the current one): a Message is rendered; a plain string is looked up."""
    if isinstance(text, Message):
        return text.render(lang)
    if isinstance(text, str):
        return translation(text, lang)
    return text


JOINS = {" ": "{a} {b}", "; ": "{a}; {b}", "\n": "{a}\n{b}", "\n\n": "{a}\n\n{b}", "  \n": "{a}  \n{b}", " · ": "{a} · {b}",
         ", ": "{a}, {b}"}


def joined(parts, sep: str = " "):
    """`parts` (sentences, list items, blocks) joined by `sep` as one Message, so each part is rendered
    in the viewer's language and the separator too (Chinese sentences join without a space)."""
    parts = list(parts)
    return functools.reduce(lambda a, b: Message(JOINS[sep], a=a, b=b), parts) if parts else Message("")
