"""Chat tab: multi-turn chat with the resident model, a system prompt, sampling presets with
editable values, streaming, stop, regenerate and clear. Also the `generate` API endpoint."""

from __future__ import annotations

import threading

import gradio as gr

from engine.sampling import HELP, Sampling, load_presets, preset
from ui.context import Context
from ui.errors import friendly

FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")

# One cancel flag per browser session, so Stop ends that session's answer and no other.
_cancels: dict[str, threading.Event] = {}


def text_of(content) -> str:
    """A Chatbot message's content as plain text (Gradio may hand it back as a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text") or content.get("content") or ""
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return str(content or "")


def to_messages(history: list[dict], system: str) -> list[dict]:
    messages = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    return messages + [{"role": m["role"], "content": text_of(m["content"])} for m in history]


def sampling_controls() -> tuple[gr.Dropdown, list[gr.components.Component]]:
    """The preset picker and one control per sampling value, each with its line of help."""
    presets = load_presets()
    first = presets["Leaderboard"]
    choice = gr.Dropdown(list(presets), value="Leaderboard", label="Sampling preset", elem_id="preset",
                         info="Leaderboard: the tutorial's evaluation settings · Roleplay chat: its chat loop · Precise: greedy")
    with gr.Row():
        temperature = gr.Slider(0, 2, first.temperature, step=0.05, label="Temperature", info=HELP["temperature"])
        top_p = gr.Slider(0.05, 1, first.top_p, step=0.01, label="Top-p", info=HELP["top_p"])
        top_k = gr.Slider(0, 200, first.top_k, step=1, label="Top-k", info=HELP["top_k"])
    with gr.Row():
        min_p = gr.Slider(0, 0.5, first.min_p, step=0.01, label="Min-p", info=HELP["min_p"])
        repetition = gr.Slider(1, 2, first.repetition_penalty, step=0.01, label="Repetition penalty",
                               info=HELP["repetition_penalty"])
        max_new = gr.Slider(1, 4096, first.max_new_tokens, step=1, label="Max new tokens", info=HELP["max_new_tokens"])
    seed = gr.Number(None, label="Seed", precision=0, info=HELP["seed"])
    values = [temperature, top_p, top_k, min_p, repetition, max_new, seed]
    choice.change(lambda name: [getattr(preset(name), f) for f in FIELDS], choice, values[:-1], api_visibility="private")
    return choice, values


def sampling_from(temperature, top_p, top_k, min_p, repetition, max_new, seed) -> Sampling:
    return Sampling.parse(
        temperature=temperature, top_p=top_p, top_k=int(top_k), min_p=min_p, repetition_penalty=repetition,
        max_new_tokens=int(max_new), seed=None if seed in (None, "") else int(seed),
    )


def render(ctx: Context) -> None:
    system = gr.Textbox(label="System prompt", lines=2, placeholder="e.g. You are a cheerful pirate. (Empty: the model's default)")
    chatbot = gr.Chatbot(label="Chat", height=420, buttons=["copy", "copy_all"], elem_id="chatbot")
    with gr.Row():
        message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=5, elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
    with gr.Row():
        stop = gr.Button("Stop", elem_id="chat-stop")
        regenerate = gr.Button("Regenerate")
        clear = gr.Button("Clear")
    stats = gr.Markdown(elem_id="chat-stats")
    with gr.Accordion("Sampling", open=False, elem_id="sampling"):
        _, values = sampling_controls()

    def add_user(text, history):
        if not text or not text.strip():
            raise gr.Error("Type a message first.")
        return "", history + [{"role": "user", "content": text}]

    @friendly
    def answer(history, system, temperature, top_p, top_k, min_p, repetition, max_new, seed, request: gr.Request):
        sampling = sampling_from(temperature, top_p, top_k, min_p, repetition, max_new, seed)
        cancel = _cancels.setdefault(request.session_hash, threading.Event())
        cancel.clear()
        history = history + [{"role": "assistant", "content": ""}]
        for reply in ctx.manager.stream(to_messages(history[:-1], system), sampling, cancel=cancel):
            history[-1]["content"] = reply.text
            yield history, reply.stats.summary() if reply.stats else "…"

    def drop_last_answer(history):
        while history and history[-1]["role"] == "assistant":
            history = history[:-1]
        if not history:
            raise gr.Error("There is no message to answer again.")
        return history

    def do_stop(request: gr.Request):
        _cancels.setdefault(request.session_hash, threading.Event()).set()

    for trigger in (message.submit, send.click):
        trigger(add_user, [message, chatbot], [message, chatbot], api_visibility="private").then(
            answer, [chatbot, system, *values], [chatbot, stats], api_visibility="private"
        )
    regenerate.click(drop_last_answer, chatbot, chatbot, api_visibility="private").then(
        answer, [chatbot, system, *values], [chatbot, stats], api_visibility="private"
    )
    stop.click(do_stop, None, None, api_visibility="private")
    clear.click(lambda: ([], ""), None, [chatbot, stats], api_visibility="private")

    @friendly
    def generate(prompt: str, preset_name: str = "Leaderboard", max_new_tokens: int = 256) -> str:
        """One reply to a single prompt, with a sampling preset."""
        sampling = Sampling.parse(**{**preset(preset_name).model_dump(), "max_new_tokens": int(max_new_tokens)})
        return ctx.manager.generate([{"role": "user", "content": prompt}], sampling).text

    gr.api(generate, api_name="generate")
