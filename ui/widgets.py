"""What several tabs share: handlers bound to the app's context, the per-session Stop flag, the
seed box, and the list of sides (the base model and every run's adapters) to answer with."""

from __future__ import annotations

import functools
import threading
import typing

import gradio as gr

from engine.compare import sides
from engine.chat.sampling import SamplingError
from ui.access import visitor_ok
from ui.context import Context
from ui.i18n import _, t, tr
from ui.errors import friendly

# One cancel flag per browser session, so Stop ends that session's answer and no other.
_cancels: dict[str, threading.Event] = {}


def bind(fn, ctx: Context, *args):
    """`fn(ctx, *args, ...)` as a Gradio handler whose errors show as messages. Handlers are plain
    functions of the context, so a test calls them without a browser."""
    bound = functools.partial(fn, ctx, *args)
    bound.__dict__.update(fn.__dict__)  # marks such as `ui.access.visitor_ok`
    bound.__name__ = fn.__name__  # Gradio names events by it; `functools.wraps` would hide the bound signature
    bound.__annotations__ = typing.get_type_hints(fn)  # resolved, so Gradio still passes a `gr.Request` parameter
    return friendly(bound)


TEMPLATE_LABELS = {"model": _("The model's own"), "chatml": "ChatML", "alpaca": "Alpaca"}


def template_choices(names) -> list[tuple[str, str]]:
    """(label, name) for chat-template choices (engine.train.config.TEMPLATE_CHOICES or engine.chat.templates.FALLBACKS)."""
    return [(TEMPLATE_LABELS[n], n) for n in names]


def preset_choices(presets) -> list[tuple]:
    """Sampling presets for a dropdown: the name stays the value, its label is translated."""
    return [(_(name), name) for name in presets]


def cancel_flag(request: gr.Request) -> threading.Event:
    return _cancels.setdefault(request.session_hash, threading.Event())


def side_choices(ctx: Context) -> list[tuple[str, str]]:
    """(label, spec) for the base model and every run's adapters, for a dropdown."""
    return [(tr(side.label), side.spec) for side in sides.available(ctx.workspace)]


def follow(ctx: Context, fn, inputs, outputs) -> None:
    """Run `fn` when the page loads and whenever the tab being rendered is shown, so its lists follow the
    workspace (a data set saved or a run started elsewhere appears without a restart)."""
    gr.on([ctx.demo.load, ctx.tab.select], visitor_ok(fn), inputs, outputs, api_visibility="private")


def keep_choice(choices: list, current, fallback=None) -> gr.Dropdown:
    """The dropdown with fresh `choices`, keeping the person's `current` choice while it still exists."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    if current in values:
        value = current
    else:
        value = fallback if fallback in values else (values[0] if values else None)
    return gr.Dropdown(choices=choices, value=value)


def seed_box(info, elem_id: str | None = None) -> gr.Textbox:
    """A seed field that can be empty (a gr.Number always sends a number); `info`: an `_()` text."""
    return gr.Textbox("", label=_("Seed"), placeholder=_("empty: a new one each time"), info=info, elem_id=elem_id)


def seed_of(text) -> int | None:
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise SamplingError(t("The seed must be a whole number of 0 or more, or empty (got '{text}').", text=text))
    return int(text)


def thinking_box(elem_id: str) -> gr.Checkbox:
    """The thinking switch of models whose template has one (engine.chat.thinking); other models ignore it."""
    return gr.Checkbox(True, label=_("Think before answering"), elem_id=elem_id,
                       info=_("For thinking models (Qwen3 and its kin): the thinking shows folded, apart from the "
                              "answer, and is never compared or judged. Other models ignore this."))
