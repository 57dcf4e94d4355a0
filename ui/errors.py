"""Errors reach the person as a plain message (gr.Error), never as a stack trace."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from engine.errors import plain

log = logging.getLogger("workbench.ui")


def _as_gr_error(e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, ValueError):  # the engine's errors are ValueErrors written for people
        return gr.Error(str(e))
    log.exception("unexpected error")
    return gr.Error(plain(e) or "Something went wrong; the app is still running and the details are in its log.")


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
