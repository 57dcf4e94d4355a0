"""Chat tab: multi-turn chat with the resident model, a system prompt, sampling presets with
editable values, streaming, stop, regenerate and clear; answering with the base model or a run's
adapter (attached to the loaded base, never reloading it); character cards; chat export and import.
Also the `generate` API endpoint. Everything a person changes lives in their own session."""

from __future__ import annotations

import time

import gradio as gr

from engine.chat import history as chat_history
from engine.compare import sides
from engine.data import read_card
from engine.chat.sampling import HELP, Sampling, load_presets, preset
from ui.context import Context
from ui.errors import friendly
from ui.widgets import cancel_flag, follow, keep_choice, seed_box, seed_of, side_choices

FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")

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
        temperature = gr.Slider(0, 2, first.temperature, step=0.05, label="Temperature", info=HELP["temperature"],
                                elem_id="temperature")
        top_p = gr.Slider(0.05, 1, first.top_p, step=0.01, label="Top-p", info=HELP["top_p"])
        top_k = gr.Slider(0, 200, first.top_k, step=1, label="Top-k", info=HELP["top_k"])
    with gr.Row():
        min_p = gr.Slider(0, 0.5, first.min_p, step=0.01, label="Min-p", info=HELP["min_p"])
        repetition = gr.Slider(1, 2, first.repetition_penalty, step=0.01, label="Repetition penalty",
                               info=HELP["repetition_penalty"])
        max_new = gr.Slider(1, 4096, first.max_new_tokens, step=1, label="Max new tokens", info=HELP["max_new_tokens"],
                            elem_id="max-new-tokens")
    seed = seed_box(HELP["seed"])
    values = [temperature, top_p, top_k, min_p, repetition, max_new, seed]
    choice.change(lambda name: [getattr(preset(name), f) for f in FIELDS], choice, values[:-1], api_visibility="private")
    return choice, values


def sampling_from(temperature, top_p, top_k, min_p, repetition, max_new, seed) -> Sampling:
    return Sampling.parse(
        temperature=temperature, top_p=top_p, top_k=int(top_k), min_p=min_p, repetition_penalty=repetition,
        max_new_tokens=int(max_new), seed=seed_of(seed),
    )


def render(ctx: Context) -> None:
    with gr.Row():
        adapter = gr.Dropdown(side_choices(ctx), value=sides.BASE, label="Answer with", scale=4, elem_id="chat-adapter",
                              info="The base model, or a run's adapter on top of it: switching keeps the base loaded.")
        refresh = gr.Button("Refresh runs", size="sm", scale=0, min_width=120, elem_id="chat-adapter-refresh")
        character = gr.Textbox(label="Character", scale=2, elem_id="chat-character",
                               placeholder="Set by a character card (optional)")
    note = gr.Markdown(elem_id="chat-note")
    system = gr.Textbox(label="System prompt", lines=2, elem_id="chat-system",
                        placeholder="e.g. You are a cheerful pirate. (Empty: the model's default)")
    chatbot = gr.Chatbot(label="Chat", height=420, buttons=["copy", "copy_all"], elem_id="chatbot")
    with gr.Row():
        message = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, scale=5, elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
    with gr.Row():
        stop = gr.Button("Stop", elem_id="chat-stop")
        regenerate = gr.Button("Regenerate")
        clear = gr.Button("Clear", elem_id="chat-clear")
    stats = gr.Markdown(elem_id="chat-stats")
    with gr.Row():
        card = gr.UploadButton("Import character card", file_types=[".json", ".png"], elem_id="chat-card")
        upload = gr.UploadButton("Import chat", file_types=[".json"], elem_id="chat-import")
        export = gr.Button("Export chat", elem_id="chat-export")
    exported = gr.File(label="Exported chat", visible=False, elem_id="chat-export-file")
    with gr.Accordion("Sampling", open=False, elem_id="sampling"):
        _, values = sampling_controls()
    chosen = gr.State(sides.BASE)  # this session's side (the dropdown may show a refused choice for a moment)
    greeting = gr.State("")  # the character's first message: Clear starts the chat again from it

    def add_user(text, history):
        if not text or not text.strip():
            raise gr.Error("Type a message first.")
        return "", history + [{"role": "user", "content": text}]

    @friendly
    def answer(history, system, spec, temperature, top_p, top_k, min_p, repetition, max_new, seed, request: gr.Request):
        sampling = sampling_from(temperature, top_p, top_k, min_p, repetition, max_new, seed)
        name = sides.activate(ctx.manager, sides.parse(ctx.workspace, spec))  # again after a model reload
        cancel = cancel_flag(request)
        cancel.clear()
        history = history + [{"role": "assistant", "content": ""}]
        for reply in ctx.manager.stream(to_messages(history[:-1], system), sampling, adapter=name, cancel=cancel):
            history[-1]["content"] = reply.text
            yield history, reply.stats.summary() if reply.stats else reply.notice or "…"  # the wait, a cut prompt

    def drop_last_answer(history):
        while history and history[-1]["role"] == "assistant":
            history = history[:-1]
        if not history:
            raise gr.Error("There is no message to answer again.")
        return history

    def do_stop(request: gr.Request):
        cancel_flag(request).set()

    def choose(spec, current):
        """Switch this session's side; a refused one leaves everything as it was, the dropdown too."""
        started = time.perf_counter()
        try:
            side = sides.parse(ctx.workspace, spec)
            sides.activate(ctx.manager, side)
        except ValueError as e:
            gr.Warning(str(e))
            return current, current, f"⚠️ {e}"
        took = time.perf_counter() - started
        where = "the base model, adapters off" if side.is_base else f"**{side.label}** on the loaded base model"
        return spec, spec, f"Answering with {where} (switched in {took:.2f} s; the base model was not reloaded)."

    def refresh_sides(spec):
        return keep_choice(side_choices(ctx), spec, sides.BASE)

    @friendly
    def import_card(path):
        card_ = read_card(path)
        opening = card_.fill(card_.first_message)
        history = [{"role": "assistant", "content": opening}] if opening else []
        return (card_.system_prompt(), card_.name, gr.Chatbot(history, label=f"Chat with {card_.name}"), opening,
                f"Imported the character card of **{card_.name}** ({card_.spec.upper()}): its system prompt and first "
                "message are set. The 'Roleplay chat' preset under Sampling is the tutorial's chat-loop setting.", "")

    @friendly
    def import_chat(path):
        chat = chat_history.read(path)
        label = f"Chat with {chat.character}" if chat.character else "Chat"
        return (chat.system, chat.character, gr.Chatbot(chat.turns(), label=label), "",
                f"Imported a chat of {len(chat.messages)} messages.", "")

    @friendly
    def export_chat(history, system, character, spec):
        chat = chat_history.Chat(character=character or "", system=system or "", adapter=spec,
                                 messages=to_messages(history, ""))
        return gr.File(value=str(chat_history.save_download(chat)), visible=True)

    for trigger in (message.submit, send.click):
        trigger(add_user, [message, chatbot], [message, chatbot], api_visibility="private").then(
            answer, [chatbot, system, chosen, *values], [chatbot, stats], api_visibility="private"
        )
    regenerate.click(drop_last_answer, chatbot, chatbot, api_visibility="private").then(
        answer, [chatbot, system, chosen, *values], [chatbot, stats], api_visibility="private"
    )
    stop.click(do_stop, None, None, api_visibility="private")
    clear.click(lambda opening: ([{"role": "assistant", "content": opening}] if opening else [], ""), greeting,
                [chatbot, stats], api_visibility="private")
    adapter.input(choose, [adapter, chosen], [chosen, adapter, note], api_visibility="private")
    refresh.click(refresh_sides, chosen, adapter, api_visibility="private")
    follow(ctx, refresh_sides, chosen, adapter)
    opened = [system, character, chatbot, greeting, note, stats]
    card.upload(import_card, card, opened, api_visibility="private")
    upload.upload(import_chat, upload, opened, api_visibility="private")
    export.click(export_chat, [chatbot, system, character, chosen], exported, api_visibility="private")

    @friendly
    def generate(prompt: str, preset_name: str = "Leaderboard", max_new_tokens: int = 256) -> str:
        """One reply to a single prompt, with a sampling preset."""
        sampling = Sampling.parse(**{**preset(preset_name).model_dump(), "max_new_tokens": int(max_new_tokens)})
        return ctx.manager.generate([{"role": "user", "content": prompt}], sampling).text

    gr.api(generate, api_name="generate")
