"""Demo mode in the app: every event runs as its caller's role (engine/access.py holds the rule).

Default deny: once the page is built, every event function is wrapped; a visitor's call of one not
marked `visitor_ok` (chatting, comparing, voting, reading lists) is refused before it runs, whether it
came from a button, gradio_client or a raw queue request by event index. The engine's own checks stand
behind this. For visitors, the controls of refused events are shown locked, with a banner saying why.
"""

from __future__ import annotations

import functools
import inspect
import time

import gradio as gr
from gradio.context import LocalContext

from engine.access import OWNER, Policy, Refused, acting_as
from engine.i18n import speaking
from ui.errors import said
from ui.i18n import language, t

LOCKED = ("🔒 **Demo.** You can chat with and compare the owner's models and runs. Loading models, uploads, "
          "training, exports and changes to runs are locked: only the app's owner can use them.")
OWNER_SIGNED_IN = "🔓 Signed in as the app's owner: everything is unlocked."
LOCKABLE = (gr.Button, gr.UploadButton, gr.File, gr.Checkbox, gr.Dropdown, gr.Radio, gr.Slider, gr.Number)


def visitor_ok(fn):
    """Mark an event function a demo visitor may call: it only reads, or acts on the visitor's own session."""
    try:
        fn.visitor_ok = True
    except AttributeError:  # a bound method
        fn = functools.partial(fn)
        fn.visitor_ok = True
    return fn


def username(request: gr.Request | None) -> str | None:
    """Gradio's login user, or the Hugging Face account signed in with gr.LoginButton."""
    if request is None:
        return None
    if request.username:
        return request.username
    try:
        info = request.session.get("oauth_info")
    except (AttributeError, AssertionError, KeyError):  # no session middleware: nobody signed in
        return None
    if not info or info.get("expires_at", time.time() + 1) < time.time():
        return None
    return info.get("userinfo", {}).get("preferred_username")


def role(policy: Policy) -> str:
    return policy.role_of(username(LocalContext.request.get(None)))


REFUSED = ("This is a demo: only the app's owner can do this. You can chat with and compare the owner's models "
           "and runs.")


def _refuse() -> None:
    raise gr.Error(t(REFUSED))


def _guarded(fn, policy: Policy, open_to_visitors: bool):
    def check() -> str:
        caller = role(policy)
        if caller != OWNER and not open_to_visitors:
            _refuse()
        return caller

    def speaking_to_caller():  # the caller's language for every message the call renders
        return speaking(language(LocalContext.request.get(None)))

    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen(*args, **kwargs):
            with speaking_to_caller(), acting_as(check()):
                async for item in fn(*args, **kwargs):
                    yield item
        return agen
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            lang = language(LocalContext.request.get(None))
            with speaking(lang):
                caller = check()
            iterator = fn(*args, **kwargs)
            while True:  # role and language are set around each step: gradio may run them on different threads
                with speaking(lang), acting_as(caller):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                    except Refused as e:
                        raise gr.Error(said(e)) from None
                yield item
        return gen
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def coro(*args, **kwargs):
            with speaking_to_caller(), acting_as(check()):
                return await fn(*args, **kwargs)
        return coro

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with speaking_to_caller(), acting_as(check()):
            try:
                return fn(*args, **kwargs)
            except Refused as e:
                raise gr.Error(said(e)) from None
    return call


def guard(demo: gr.Blocks, policy: Policy, banner: gr.Markdown) -> None:
    """Wrap every event of `demo` (call once the page is built), and lock visitors' controls on load."""
    if policy.demo:
        _lock_for_visitors(demo, policy, banner)
    # A component whose value is a function gets it on each page load: the same first view for everyone.
    initial = {id(block.load_event_to_attach[0]) for block in demo.blocks.values()
               if getattr(block, "load_event_to_attach", None)}
    for block_fn in demo.fns.values():  # last: leaving `with demo` above may add load events
        if block_fn.fn is not None:
            open_to_visitors = getattr(block_fn.fn, "visitor_ok", False) or id(block_fn.fn) in initial
            block_fn.fn = _guarded(block_fn.fn, policy, open_to_visitors)


def _lock_for_visitors(demo: gr.Blocks, policy: Policy, banner: gr.Markdown) -> None:
    """On page load, a visitor sees the controls of owner-only events locked, and the banner says why."""
    locked: dict[int, gr.components.Component] = {}
    opened: set[int] = set()
    for block_fn in demo.fns.values():
        for block_id, _event in block_fn.targets:
            block = demo.blocks.get(block_id)
            if isinstance(block, LOCKABLE):
                if getattr(block_fn.fn, "visitor_ok", False):
                    opened.add(block_id)
                else:
                    locked[block_id] = block
    controls = [block for block_id, block in locked.items() if block_id not in opened]

    @visitor_ok
    def show_access():
        visitor = role(policy) != OWNER
        return (t(LOCKED) if visitor else t(OWNER_SIGNED_IN),
                *[gr.update(interactive=False) if visitor else gr.update() for _ in controls])

    with demo:
        demo.load(show_access, None, [banner, *controls], api_visibility="private")
