"""The Gradio app: a header with the model and hardware, then one tab per module in TABS."""

from __future__ import annotations

import importlib

import gradio as gr

from ui.context import Context

TABS = (
    ("Model", "ui.model_tab"),
    ("Chat", "ui.chat_tab"),
    ("Dataset", "ui.dataset_tab"),
    ("Train", "ui.train_tab"),
    ("Compare", "ui.compare_tab"),
    ("Export", "ui.export_tab"),
)

def build(ctx: Context) -> gr.Blocks:
    with gr.Blocks(title="LoRA Workbench") as demo:
        gr.Markdown("# LoRA Workbench\nFine-tune a language model, see what changed, take it home.")
        ctx.status = gr.Markdown(ctx.status_text(), elem_id="status")
        ctx.demo = demo
        with gr.Tabs(elem_id="tabs") as ctx.tabs:
            for title, module in TABS:
                with gr.Tab(title, id=title.lower()) as ctx.tab:
                    importlib.import_module(module).render(ctx)
        demo.load(ctx.status_text, outputs=ctx.status, api_visibility="private")
    return demo
