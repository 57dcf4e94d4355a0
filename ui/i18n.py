"""The page's words in the viewer's language (engine/i18n.py holds the table and the rules).

Static text of a component (label, info, placeholder, button, Markdown, tab title, choice label) goes
through `_(text)`: a `gr.I18n` key, the English text itself, that the browser translates from the table
(`I18N`, passed to `launch`). The browser picks the language from its own (navigator.language), and the
language control of the page (or Gradio's Settings panel) switches it.

Text a handler returns is rendered on the server, `t(template, **params)`, in the language of the caller:
the choice made in the page for that browser session, else the browser's Accept-Language. Every event
runs inside `speaking(language(request))` (ui/access.py), so the two agree.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.i18n import CHINESE, ENGLISH, LANGS, Message, msg, table, tr

I18N = gr.I18n(**{CHINESE: dict(table())})  # a copy: `_` adds the composed texts of the page
CHOICES = [("English", ENGLISH), ("简体中文", CHINESE)]

# The choice made in the page, per browser session (gradio's session hash).
_chosen: dict[str, str] = {}


def _(text: str):
    """Static component text, translated in the browser. A composed Message (a setting's advice and why
    the preset chose its value) is rendered here in Chinese and added to the browser's table, under its
    English, as the page is built."""
    if isinstance(text, Message) and text.params:
        I18N.translations[CHINESE].setdefault(str(text), text.render(CHINESE))
    return I18N(text)


def t(template: str, **params) -> str:
    """Text a handler returns, in the caller's language."""
    return tr(msg(template, **params))


def from_header(accept_language: str | None) -> str:
    """The first of our languages in an Accept-Language header (`zh-CN,zh;q=0.9,en;q=0.8`), else English."""
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _sep, q = part.strip().partition(";q=")
        try:
            ranked.append((-float(q or 1), i, tag.strip().lower()))
        except ValueError:
            continue
    for _q, _i, tag in sorted(ranked):
        if tag.startswith("zh"):
            return CHINESE
        if tag.startswith("en"):
            return ENGLISH
    return ENGLISH


def language(request: gr.Request | None) -> str:
    """The caller's language: the one chosen in the page for this session, else the browser's."""
    if request is None:
        return ENGLISH
    session = getattr(request, "session_hash", None)
    if session in _chosen:
        return _chosen[session]
    headers = getattr(request, "headers", None) or {}
    return from_header(headers.get("accept-language"))


def choose(lang: str, request: gr.Request) -> None:
    """Remember this session's choice (the language control's change event)."""
    if lang in LANGS and request.session_hash:
        _chosen[request.session_hash] = lang


def browser_language(request: gr.Request) -> str:
    """The control's first value: the language the browser asked for."""
    return language(request)


def _core_module() -> str:
    """Gradio's frontend module that holds `changeLocale` (its file name carries a build hash)."""
    assets = Path(gr.__file__).parent / "templates" / "frontend" / "assets"
    return next(assets.glob("core-*.js")).name


# Switch the browser's language to the control's value: Gradio's own frontend function, from the
# module the page already loaded (same URL, so the same instance).
SWITCH_JS = """async (lang) => {
  const page = [...document.scripts].find(s => /\\/assets\\/index-[^/]*\\.js/.test(s.src));
  if (page) { (await import(new URL("%s", page.src).href)).changeLocale(lang); }
  return lang;
}""" % _core_module()
