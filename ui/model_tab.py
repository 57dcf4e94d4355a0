"""Model tab: choose, load and unload the resident model; hardware, backend and memory."""

from __future__ import annotations

import gradio as gr

from engine.default_model import NAME as DEFAULT_NAME
from ui.context import Context
from ui.errors import friendly

DEFAULT_CHOICE = f"default ({DEFAULT_NAME}, offline)"
SUGGESTIONS = ["unsloth/Qwen3-8B", "mistralai/Mistral-Nemo-Instruct-2407", "unsloth/Llama-3.2-1B-Instruct"]


def _choices(ctx: Context) -> list[str]:
    local = sorted(p.name for p in ctx.workspace.models.iterdir() if (p / "config.json").exists() and p.name != DEFAULT_NAME)
    return [DEFAULT_CHOICE, *local, *SUGGESTIONS]


def _spec(choice: str) -> str:
    return "default" if choice == DEFAULT_CHOICE else (choice or "").strip()


def render(ctx: Context) -> None:
    gr.Markdown(
        "Pick the model to chat with and train. The default model ships with the app and works offline. "
        "Type a Hugging Face id (`owner/name`) or the path of a folder on this machine for another one."
    )
    with gr.Row():
        with gr.Column(scale=3):
            choice = gr.Dropdown(_choices(ctx), value=DEFAULT_CHOICE, label="Model", allow_custom_value=True,
                                 info="The default, a Hub id like unsloth/Qwen3-8B, or a local folder with config.json")
            with gr.Row():
                four_bit = gr.Checkbox(
                    False, label="Load in 4-bit (QLoRA)", interactive=True,
                    info="Needs an NVIDIA GPU: much less memory, small accuracy cost."
                    if ctx.hardware.can_4bit else "Needs an NVIDIA GPU with bitsandbytes; not available on this machine.",
                )
                max_len = gr.Number(2048, label="Max sequence length", precision=0, minimum=128, maximum=131072,
                                    info="Longest text the model reads at once, in tokens (2048 suits most chats).")
                trust = gr.Checkbox(False, label="Trust remote code",
                                    info="Only for models whose authors you trust: runs code from the model's repository.")
            with gr.Row():
                load = gr.Button("Load", variant="primary")
                unload = gr.Button("Unload")
        with gr.Column(scale=2):
            hardware = gr.Markdown(_hardware_text(ctx))
    message = gr.Markdown()

    @friendly
    def do_load(choice, four_bit, max_len, trust, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="Loading the model (a Hub model downloads first)")
        loaded = ctx.manager.load(_spec(choice), bool(four_bit), int(max_len or 2048), bool(trust))
        return f"Loaded {loaded.summary()}.", ctx.status_text(), _hardware_text(ctx)

    @friendly
    def do_unload():
        ctx.manager.unload()
        return "Unloaded; its memory is free.", ctx.status_text(), _hardware_text(ctx)

    load.click(do_load, [choice, four_bit, max_len, trust], [message, ctx.status, hardware], api_name="load_model")
    unload.click(do_unload, None, [message, ctx.status, hardware], api_name="unload_model")


def _hardware_text(ctx: Context) -> str:
    hw = ctx.hardware
    return (
        f"**Hardware:** {hw.name}  \n**Device:** {hw.device} · bf16: {'yes' if hw.bf16 else 'no'} · "
        f"4-bit: {'yes' if hw.can_4bit else 'no'}  \n**Memory free:** {hw.free_bytes() / 2**30:.1f} of "
        f"{hw.total_bytes / 2**30:.1f} GiB  \n**Training backend:** "
        + ("unsloth (its fast kernels)" if hw.backend == "unsloth" else "transformers + peft")
    )
