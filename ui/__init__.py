"""The Gradio app: a header with the model and hardware, then one tab per module in TABS."""

from __future__ import annotations

import importlib

import gradio as gr

from engine.access import Policy
from engine.i18n import tr
from ui import access, i18n
from ui.context import Context
from ui.i18n import _

TABS = (
    ("Start here", "ui.start_tab"),
    ("Model", "ui.model_tab"),
    ("Chat", "ui.chat_tab"),
    ("Dataset", "ui.dataset_tab"),
    ("Train", "ui.train_tab"),
    ("Compare", "ui.compare_tab"),
    ("Export", "ui.export_tab"),
)


def switch(lang: str, request: gr.Request) -> list:
    """This session's language; the tab titles again (the browser does not redraw a switched tab bar)."""
    i18n.choose(lang, request)
    return [gr.Tab(label=tr(title, lang)) for title, _module in TABS]


def build(ctx: Context, policy: Policy | None = None, notices: tuple[str, ...] = ()) -> gr.Blocks:
    """The page. `notices` are lines shown under the title (e.g. that a Space's storage is not persistent)."""
    policy = policy or Policy.from_env()
    with gr.Blocks(title="LoRA Workbench") as demo:
        with gr.Row():
            with gr.Column(scale=5):
                gr.Markdown(_("# LoRA Workbench\nFine-tune a language model, see what changed, take it home."))
            language = gr.Radio(i18n.CHOICES, value=None, show_label=False, container=False, min_width=160,
                                elem_id="language", scale=1)
        for notice in notices:
            gr.Markdown(notice, elem_classes="notice")
        banner = gr.Markdown("", elem_id="access")
        if policy.demo and policy.oauth:
            gr.LoginButton(value=_("Owner: sign in with Hugging Face"))
        ctx.status = gr.Markdown(ctx.status_text(), elem_id="status")
        ctx.demo = demo
        ctx.language = language
        tabs = []
        with gr.Tabs(elem_id="tabs") as ctx.tabs:
            for title, module in TABS:
                with gr.Tab(_(title), id=title.split()[0].lower()) as ctx.tab:
                    importlib.import_module(module).render(ctx)
                tabs.append(ctx.tab)
        demo.load(access.visitor_ok(ctx.status_text), outputs=ctx.status, api_visibility="private")
        # The language: the browser's at first; a change switches the page (in the browser) and this
        # session's server-side messages together.
        demo.load(access.visitor_ok(i18n.browser_language), outputs=language, api_visibility="private")
        language.change(access.visitor_ok(switch), language, tabs, js=i18n.SWITCH_JS, api_visibility="private")
    access.guard(demo, policy, banner)
    return demo
