"""The Gradio app: a header with the model and hardware, then one tab per module in TABS."""

from __future__ import annotations

import importlib

import gradio as gr

from engine.access import Policy
from ui import access
from ui.context import Context

TABS = (
    ("Start here", "ui.start_tab"),
    ("Model", "ui.model_tab"),
    ("Chat", "ui.chat_tab"),
    ("Dataset", "ui.dataset_tab"),
    ("Train", "ui.train_tab"),
    ("Compare", "ui.compare_tab"),
    ("Export", "ui.export_tab"),
)


def build(ctx: Context, policy: Policy | None = None, notices: tuple[str, ...] = ()) -> gr.Blocks:
    """The page. `notices` are lines shown under the title (e.g. that a Space's storage is not persistent)."""
    policy = policy or Policy.from_env()
    with gr.Blocks(title="LoRA Workbench") as demo:
        gr.Markdown("# LoRA Workbench\nFine-tune a language model, see what changed, take it home.")
        for notice in notices:
            gr.Markdown(notice, elem_classes="notice")
        banner = gr.Markdown("", elem_id="access")
        if policy.demo and policy.oauth:
            gr.LoginButton(value="Owner: sign in with Hugging Face")
        ctx.status = gr.Markdown(ctx.status_text(), elem_id="status")
        ctx.demo = demo
        with gr.Tabs(elem_id="tabs") as ctx.tabs:
            for title, module in TABS:
                with gr.Tab(title, id=title.split()[0].lower()) as ctx.tab:
                    importlib.import_module(module).render(ctx)
        demo.load(access.visitor_ok(ctx.status_text), outputs=ctx.status, api_visibility="private")
    access.guard(demo, policy, banner)
    return demo
