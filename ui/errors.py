"""Errors reach the person as a plain message (gr.Error), never as a stack trace."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from engine.errors import plain
from engine.i18n import tr
from ui.i18n import t

log = logging.getLogger("workbench.ui")


def said(e: BaseException) -> str:
    """An error's message in the caller's language (an engine Message keeps its template and fields)."""
    return tr(e.args[0]) if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)


def _as_gr_error(e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, ValueError):  # the engine's errors are ValueErrors written for people
        return gr.Error(said(e))
    log.exception("unexpected error")
    return gr.Error(tr(plain(e)) if plain(e) else
                    t("Something went wrong; the app is still running and the details are in its log."))


def friendly(fn):
    """Wrap a Gradio handler (plain function or generator) so errors show as messages."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise _as_gr_error(e) from None

        return gen

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _as_gr_error(e) from None

    return call
