"""The page's words in the viewer's language (engine/i18n.py holds the table and the rules).

`_(text)` marks static text of a component (label, info, placeholder, button, Markdown) for
translation; `t(template, **params)` renders text a handler returns, in the caller's language.
"""

from __future__ import annotations

from engine.i18n import msg, tr


def _(text: str) -> str:
    return text


def t(template: str, **params) -> str:
    return tr(msg(template, **params))
