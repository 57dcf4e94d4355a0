"""Model tab: choose, load and unload the resident model; hardware, backend and memory."""

from __future__ import annotations

import gradio as gr

from engine.chat.models import four_bit_problem
from engine.default_model import NAME as DEFAULT_NAME
from ui.context import Context
from ui.i18n import _, t
from ui.widgets import bind, follow

DEFAULT_CHOICE = f"default ({DEFAULT_NAME}, offline)"
SUGGESTIONS = ["unsloth/Qwen3-8B", "mistralai/Mistral-Nemo-Instruct-2407", "unsloth/Llama-3.2-1B-Instruct"]


def choices(ctx: Context) -> list[str]:
    """The default model, the models saved in the workspace, then a few Hub suggestions."""
    local = sorted(p.name for p in ctx.workspace.models.iterdir() if (p / "config.json").exists() and p.name != DEFAULT_NAME)
    return [DEFAULT_CHOICE, *local, *SUGGESTIONS]


def refresh(ctx: Context, choice) -> gr.Dropdown:
    """The model list as the workspace holds it now, keeping the choice (also a typed Hub id or folder)."""
    return gr.Dropdown(choices=choices(ctx), value=choice or DEFAULT_CHOICE, allow_custom_value=True)


def _spec(choice: str) -> str:
    return "default" if choice == DEFAULT_CHOICE else (choice or "").strip()


def load(ctx: Context, choice, four_bit, max_len, trust, progress=gr.Progress(track_tqdm=True)) -> tuple:
    progress(0, desc=t("Loading the model (a Hub model downloads first)"))
    loaded = ctx.manager.load(_spec(choice), bool(four_bit), int(max_len or 2048), bool(trust))
    return t("Loaded {model}.", model=loaded.summary()), ctx.status_text(), hardware_text(ctx)


def unload(ctx: Context) -> tuple:
    ctx.manager.unload()
    return t("Unloaded; its memory is free."), ctx.status_text(), hardware_text(ctx)


def hardware_text(ctx: Context) -> str:
    hw = ctx.hardware
    yes, no = t("yes"), t("no")
    return t("**Hardware:** {name}  \n**Device:** {device} · bf16: {bf16} · 4-bit: {four_bit}  \n"
             "**Memory free:** {free} of {total} GiB  \n**Training backend:** {backend}",
             name=hw.name, device=hw.device, bf16=yes if hw.bf16 else no, four_bit=yes if hw.can_4bit else no,
             free=f"{hw.free_gib():.1f}", total=f"{hw.total_bytes / 2**30:.1f}",
             backend=t("unsloth (its fast kernels)") if hw.backend == "unsloth" else "transformers + peft")


def render(ctx: Context) -> None:
    gr.Markdown(_(
        "Pick the model to chat with and train. The default model ships with the app and works offline. "
        "Type a Hugging Face id (`owner/name`) or the path of a folder on this machine for another one."
    ))
    no_4bit = four_bit_problem(ctx.hardware)
    with gr.Row():
        with gr.Column(scale=3):
            choice = gr.Dropdown(choices(ctx), value=DEFAULT_CHOICE, label=_("Model"), allow_custom_value=True,
                                 elem_id="model-choice",
                                 info=_("The default, a Hub id like unsloth/Qwen3-8B, or a local folder with config.json"))
            with gr.Row():
                four_bit = gr.Checkbox(False, label=_("Load in 4-bit (QLoRA)"), interactive=no_4bit is None,
                                       elem_id="model-4bit",
                                       info=_(no_4bit or "Much less memory, a small cost in accuracy."))
                max_len = gr.Number(2048, label=_("Max sequence length"), precision=0, minimum=128, maximum=131072,
                                    info=_("Longest text the model reads at once, in tokens (2048 suits most chats)."))
                trust = gr.Checkbox(False, label=_("Trust remote code"),
                                    info=_("Only for models whose authors you trust: runs code from the model's repository."))
            with gr.Row():
                load_button = gr.Button(_("Load"), variant="primary", elem_id="model-load")
                unload_button = gr.Button(_("Unload"), elem_id="model-unload")
        with gr.Column(scale=2):
            hardware = gr.Markdown(hardware_text(ctx))
    message = gr.Markdown(elem_id="model-message")

    load_button.click(bind(load, ctx), [choice, four_bit, max_len, trust], [message, ctx.status, hardware],
                      api_name="load_model")
    unload_button.click(bind(unload, ctx), None, [message, ctx.status, hardware], api_name="unload_model")
    follow(ctx, bind(refresh, ctx), choice, choice)
    follow(ctx, bind(hardware_text, ctx), None, hardware)  # also in the viewer's language
