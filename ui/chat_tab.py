"""Chat tab: multi-turn chat with the resident model, a system prompt, sampling presets with
editable values, streaming, stop, continue, regenerate (then which of the two replies is better, saved as a
preference pair: engine.chat.choices) and clear; answering with the base model or a
run's adapter (attached to the loaded base, never reloading it); character cards; chat export and
import. Also the `generate` API endpoint. The chat, its system prompt, character and preset are kept
in the person's browser (localStorage), so a reload brings them back; the server keeps none of it."""

from __future__ import annotations

import os
import time

import gradio as gr

from engine.chat import choices
from engine.chat import history as chat_history
from engine.chat import thinking
from engine.chat.history import Chat
from engine.chat.sampling import HELP, Sampling, load_presets, preset
from engine.chat.serving import Busy
from engine.compare import sides
from engine.data import read_card
from ui.access import visitor_ok
from ui.context import Context
from ui.errors import said
from ui.i18n import _, t, tr
from ui.widgets import (bind, cancel_flag, follow, keep_choice, preset_choices, seed_box, seed_of, side_choices,
                        thinking_box)

FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")
FIRST_PRESET = "Leaderboard"
CUT = ("length", "time")  # how a reply ends that Continue can take further
# A thinking model's folded thoughts are not kept: a reload brings back the answers.
REMEMBER = """(messages, system, character, lorebook, preset) => (messages === null || system === null ? undefined :
  {format: "lora-workbench-chat", version: 1, system, character, lorebook, preset,
   messages: messages.filter(m => !(m.metadata && m.metadata.title))})"""


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
    """The conversation for the model: a thinking model's folded thoughts are shown, never sent back."""
    messages = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    return messages + [{"role": m["role"], "content": text_of(m["content"])} for m in history
                       if not (m.get("metadata") or {}).get("title")]


def reply_messages(text: str) -> list[dict]:
    """A reply as Chatbot messages: a thinking model's thinking folded (Gradio's thought display), then the answer."""
    parts = thinking.split(text)
    if not parts.thinking:
        return [{"role": "assistant", "content": parts.answer if parts.thinking_done else text}]
    thought = {"role": "assistant", "content": parts.thinking,
               "metadata": {"title": t("Thinking"), "status": "done" if parts.thinking_done else "pending"}}
    return [thought, {"role": "assistant", "content": parts.answer}] if parts.answer else [thought]


def sampling_controls() -> tuple[gr.Dropdown, list[gr.components.Component]]:
    """The preset picker and one control per sampling value, each with its line of help."""
    presets = load_presets()
    first = presets[FIRST_PRESET]
    choice = gr.Dropdown(preset_choices(presets), value=FIRST_PRESET, label=_("Sampling preset"), elem_id="preset",
                         info=_("Leaderboard: the tutorial's evaluation settings · Roleplay chat: its chat loop · "
                                "Precise: always the most likely word, the same answer every time"))
    with gr.Row():
        temperature = gr.Slider(0, 2, first.temperature, step=0.05, label=_("Temperature"), info=_(HELP["temperature"]),
                                elem_id="temperature")
        top_p = gr.Slider(0.05, 1, first.top_p, step=0.01, label=_("Top-p"), info=_(HELP["top_p"]))
        top_k = gr.Slider(0, 200, first.top_k, step=1, label=_("Top-k"), info=_(HELP["top_k"]))
    with gr.Row():
        min_p = gr.Slider(0, 0.5, first.min_p, step=0.01, label=_("Min-p"), info=_(HELP["min_p"]))
        repetition = gr.Slider(1, 2, first.repetition_penalty, step=0.01, label=_("Repetition penalty"),
                               info=_(HELP["repetition_penalty"]))
        max_new = gr.Slider(1, 4096, first.max_new_tokens, step=1, label=_("Max new tokens"), info=_(HELP["max_new_tokens"]),
                            elem_id="max-new-tokens")
    seed = seed_box(_(HELP["seed"]))
    values = [temperature, top_p, top_k, min_p, repetition, max_new, seed]
    choice.change(visitor_ok(lambda name: [getattr(preset(name), f) for f in FIELDS]), choice, values[:-1],
                  api_visibility="private")
    return choice, values


def sampling_from(temperature, top_p, top_k, min_p, repetition, max_new, seed) -> Sampling:
    return Sampling.parse(
        temperature=temperature, top_p=top_p, top_k=int(top_k), min_p=min_p, repetition_penalty=repetition,
        max_new_tokens=int(max_new), seed=seed_of(seed),
    )


def _cut_note(stats) -> tuple[gr.Markdown, gr.Button]:
    """The note under a reply that a limit cut short, and the Continue button beside it (both hidden otherwise)."""
    cut = stats is not None and stats.finish in CUT
    note = t("✂️ The reply {ended}. **Continue** asks the model to go on from there.", ended=tr(stats.ended)) if cut else ""
    return gr.Markdown(note, visible=cut), gr.Button(visible=cut)


def prompt_seen(earlier: list[dict], system: str, lore) -> tuple[list[dict], list[str]]:
    """The conversation the model receives to answer `earlier`: the chat's system prompt followed by the
    lorebook entries the recent messages call up; and those entries' names."""
    system, entries = chat_history.reply_system(system, chat_history.lorebook_of(lore), to_messages(earlier, ""))
    return to_messages(earlier, system), entries


def _stream(ctx: Context, history, system, lore, spec, values: tuple, think: bool, request: gr.Request):
    """Stream the model's answer into the last message of `history` (an assistant message: empty, or one to go on);
    `lore`: a character card's lorebook, whose entries the recent messages call up join the system prompt;
    `think`: a thinking model's switch."""
    sampling = sampling_from(*values)
    name = sides.activate(ctx.manager, sides.parse(ctx.workspace, spec))  # again after a model reload
    cancel = cancel_flag(request)
    cancel.clear()
    hidden = (gr.Markdown(visible=False), gr.Button(visible=False))
    going_on, start = bool(text_of(history[-1]["content"])), len(history) - 1
    earlier = history if going_on else history[:-1]  # a new reply: the template's own prompt
    messages, entries = prompt_seen(earlier, system, lore)
    lore_note = t(" · Lorebook entries in this reply's prompt: {names}.", names=", ".join(entries)) if entries else ""
    try:
        replies = ctx.manager.stream(messages, sampling, adapter=name, cancel=cancel, session=request.session_hash,
                                     thinking=bool(think))
    except Busy as e:  # said in the chat, and the message stays to be sent again
        gr.Warning(said(e))
        busy = t("⏳ {reason} Then press Regenerate to ask again.", reason=said(e))
        yield history[:-1] if not going_on else history, busy, *hidden
        return
    for reply in replies:
        if going_on or not reply.text:  # a wait has no text yet
            history[-1]["content"] = reply.text or history[-1]["content"]
        else:
            history[start:] = reply_messages(reply.text)
        if reply.stats:
            yield history, tr(reply.stats.summary()) + lore_note, *_cut_note(reply.stats)
        else:
            yield history, tr(reply.notice) if reply.notice else "…", *hidden  # the wait, a cut prompt


@visitor_ok
def add_user(ctx: Context, text, history):
    if not text or not text.strip():
        raise gr.Error(t("Type a message first."))
    return "", history + [{"role": "user", "content": text}]


# The sampling values are named, not `*values`: Gradio passes a gr.Request only to a positional parameter.
@visitor_ok
def answer(ctx: Context, history, system, lore, spec, temperature, top_p, top_k, min_p, repetition, max_new, seed,
           think, request: gr.Request):
    """A new assistant message answering the chat so far."""
    values = (temperature, top_p, top_k, min_p, repetition, max_new, seed)
    yield from _stream(ctx, history + [{"role": "assistant", "content": ""}], system, lore, spec, values, think,
                       request)


@visitor_ok
def go_on(ctx: Context, history, system, lore, spec, temperature, top_p, top_k, min_p, repetition, max_new, seed,
          think, request: gr.Request):
    """More of the last reply, appended to that same message (not a new turn)."""
    values = (temperature, top_p, top_k, min_p, repetition, max_new, seed)
    if not history or history[-1]["role"] != "assistant" or not text_of(history[-1]["content"]).strip():
        raise gr.Error(t("There is no reply to continue: send a message first."))
    history = [*history[:-1], {"role": "assistant", "content": text_of(history[-1]["content"])}]
    yield from _stream(ctx, history, system, lore, spec, values, think, request)


@visitor_ok
def drop_last_answer(ctx: Context, history):
    while history and history[-1]["role"] == "assistant":
        history = history[:-1]
    if not history:
        raise gr.Error(t("There is no message to answer again."))
    return history


def _asked(history: list[dict]) -> list[dict]:
    """The chat without its last reply."""
    while history and history[-1]["role"] == "assistant":
        history = history[:-1]
    return history


def _reply(history: list[dict]) -> str:
    """The last reply's answer, a thinking model's folded thoughts left out ('' when the chat ends with the
    person's message)."""
    tail = history[len(_asked(history)):]
    return "".join(text_of(m["content"]) for m in tail if not (m.get("metadata") or {}).get("title"))


@visitor_ok
def set_aside(ctx: Context, history, system, answered, aside):
    """Regenerate: the chat without its last reply, that reply kept aside (with the conversation it answers
    and the side that wrote it) to be judged against the new one, and the question hidden meanwhile."""
    asked = drop_last_answer(ctx, history)
    prompt = to_messages(asked, system)
    if _reply(history).strip():
        aside = {"prompt": prompt, "reply": _reply(history), "side": answered or ""}
    elif not aside or aside["prompt"] != prompt:  # no reply came (busy): the one before it stays aside
        aside = None
    return asked, aside, gr.Row(visible=False)


def _same_turn(history, system, aside) -> bool:
    return bool(aside) and bool(_reply(history).strip()) and to_messages(_asked(history), system) == aside["prompt"]


@visitor_ok
def offer(ctx: Context, history, system, spec, aside):
    """After a reply: the side that wrote it, and, where a regenerated reply and the one set aside answer the
    same conversation, the question which is better. Returns [answered, aside, choice row, question]."""
    if not _same_turn(history, system, aside):
        return spec, None, gr.Row(visible=False), ""
    earlier = aside["reply"].strip()
    if _reply(history).strip() == earlier:
        return spec, aside, gr.Row(visible=False), ""
    shown = earlier if len(earlier) <= 600 else earlier[:600] + "…"
    quoted = "\n".join("> " + line for line in shown.splitlines())
    return spec, aside, gr.Row(visible=True), t("**Which reply is better?** The new one above, or the earlier "
                                                 "one:\n\n{reply}", reply=quoted)


def mark(ctx: Context, better: str, history, system, lore, answered, aside):
    """Save the new reply and the earlier one as a preference pair, `better` ("new" or "earlier") chosen,
    answering the conversation as the model received it (the lorebook entries `lore` added to the system
    prompt for both replies included), so the pair trains in the context it was chosen in.
    Returns [aside, choice row, note]."""
    if not _same_turn(history, system, aside):
        raise gr.Error(t("There are no two replies to choose between: press Regenerate for another reply first."))
    new, earlier = (_reply(history), answered or ""), (aside["reply"], aside["side"])
    (chosen, chosen_side), (rejected, rejected_side) = (new, earlier) if better == "new" else (earlier, new)
    prompt, _ = prompt_seen(_asked(history), system, lore)
    choices.save(ctx.workspace, prompt, chosen, rejected, chosen_side, rejected_side)
    n = len(choices.records(ctx.workspace))
    note = (t("Saved the new reply as better than the earlier one, a preference pair ({n} chat choices in the "
              "workspace; the Train tab's *Chat choices* trains on them).", n=n) if better == "new" else
            t("Saved the earlier reply as better than the new one, a preference pair ({n} chat choices in the "
              "workspace; the Train tab's *Chat choices* trains on them).", n=n))
    return None, gr.Row(visible=False), note


@visitor_ok
def hide_choice(ctx: Context):
    """A new message: the question about the last two replies goes while the chat moves on."""
    return gr.Row(visible=False)


@visitor_ok
def forget(ctx: Context):
    """A chat cleared or replaced: no reply set aside, nobody known to have written the replies."""
    return None, None, gr.Row(visible=False)


@visitor_ok
def stop(ctx: Context, request: gr.Request):
    cancel_flag(request).set()


@visitor_ok
def clear(ctx: Context, greeting):
    opening = [{"role": "assistant", "content": greeting}] if greeting else []
    return opening, "", gr.Markdown(visible=False), gr.Button(visible=False)


@visitor_ok
def choose(ctx: Context, spec, current):
    """Switch this session's side; a refused one leaves everything as it was, the dropdown too."""
    started = time.perf_counter()
    try:
        side = sides.parse(ctx.workspace, spec)
        sides.activate(ctx.manager, side)
    except ValueError as e:
        gr.Warning(said(e))
        return current, current, t("⚠️ {problem}", problem=said(e))
    took = time.perf_counter() - started
    if side.is_base:
        return spec, spec, t("Answering with the base model, adapters off (switched in {took:.2f} s; the base model "
                             "was not reloaded).", took=took)
    return spec, spec, t("Answering with **{side}** on the loaded base model (switched in {took:.2f} s; the base "
                         "model was not reloaded).", side=side.label, took=took)


@visitor_ok
def refresh_sides(ctx: Context, spec):
    return keep_choice(side_choices(ctx), spec, sides.BASE)


def current(history, system, character, greeting, lore) -> Chat:
    return Chat(character=character or "", system=system or "", greeting=greeting or "",
                lorebook=chat_history.lorebook_of(lore), messages=to_messages(history, ""))


def _lore(chat: Chat):
    return None if chat.lorebook is None else chat.model_dump()["lorebook"]


def opened(chat: Chat, note: str) -> tuple:
    """What the page shows for a chat just imported: the outputs of `import_card`, `import_chat` and `replace`."""
    label = t("Chat with {character}", character=chat.character) if chat.character else t("Chat")
    return (chat.system, chat.character, gr.Chatbot(chat.turns(), label=label), chat.greeting, _lore(chat), note, "",
            None, gr.Row(visible=False), "", gr.Markdown(visible=False), gr.Button(visible=False))


def _offer(ctx: Context, chat: Chat, note: str, history, system, character, greeting, lore) -> tuple:
    """Open `chat` at once where nothing would be lost; else keep it aside and ask first."""
    if not current(history, system, character, greeting, lore).started:
        return opened(chat, note)
    if chat.character:
        question = t("Replace the current conversation with the chat with **{character}**? The conversation on "
                     "screen is lost unless you export it first.", character=chat.character)
    else:
        question = t("Replace the current conversation with the imported chat of {count} messages? The conversation "
                     "on screen is lost unless you export it first.", count=len(chat.messages))
    return (*(gr.skip(),) * 7, {"chat": chat.model_dump(), "note": note}, gr.Row(visible=True), question,
            gr.skip(), gr.skip())


def import_card(ctx: Context, path, history, system, character, greeting, lore) -> tuple:
    card = read_card(path)
    note = t("Imported the character card of **{name}** ({spec}): its system prompt and first message are set. "
             "The 'Roleplay chat' preset under Sampling is the tutorial's chat-loop setting.",
             name=card.name, spec=card.spec.upper())
    if card.lorebook:
        note += t(" Its lorebook '{book}' ({count} entries) is used in this chat: an entry joins the system prompt "
                  "of a reply when its keywords come up in the last {depth} messages (an always-on entry, in every "
                  "reply); the line under each reply names the entries used.", book=card.lorebook.name,
                  count=len(card.lorebook.entries), depth=card.lorebook.scan_depth)
    return _offer(ctx, chat_history.from_card(card), note, history, system, character, greeting, lore)


def import_chat(ctx: Context, path, history, system, character, greeting, lore) -> tuple:
    chat = chat_history.read(path)
    return _offer(ctx, chat, t("Imported a chat of {count} messages.", count=len(chat.messages)), history, system,
                  character, greeting, lore)


def replace(ctx: Context, pending) -> tuple:
    if not pending:
        raise gr.Error(t("There is nothing waiting to be imported; import the card or the chat again."))
    return opened(Chat.model_validate(pending["chat"]), pending["note"])


def keep(ctx: Context) -> tuple:
    return None, gr.Row(visible=False), t("Kept the current conversation; nothing was imported.")


@visitor_ok
def export_chat(ctx: Context, history, system, character, greeting, lore, spec, preset_name):
    chat = current(history, system, character, greeting, lore).model_copy(update={"adapter": spec, "preset": preset_name})
    return gr.File(value=str(chat_history.save_download(chat)), visible=True)


@visitor_ok
def recall(ctx: Context, saved, history, system, character, greeting, lore) -> tuple:
    """The chat the browser kept, back on a page that is still blank (just loaded); a page that already shows
    something is left as it is, so that what is being typed is never overwritten by what was stored."""
    chat = chat_history.restore(saved)
    if chat == Chat() or current(history, system, character, greeting, lore) != Chat():
        return (gr.skip(),) * 6
    label = t("Chat with {character}", character=chat.character) if chat.character else t("Chat")
    chosen = chat.preset if chat.preset in load_presets() else FIRST_PRESET
    return chat.system, chat.character, gr.Chatbot(chat.turns(), label=label), chat.greeting, _lore(chat), chosen


@visitor_ok
def generate(ctx: Context, prompt: str, preset_name: str = "Leaderboard", max_new_tokens: int = 256) -> str:
    """One reply to a single prompt, with a sampling preset."""
    sampling = Sampling.parse(**{**preset(preset_name).model_dump(), "max_new_tokens": int(max_new_tokens)})
    return ctx.manager.generate([{"role": "user", "content": prompt}], sampling).text


def api_info(ctx: Context, request: gr.Request) -> str:
    """What to paste into a front end: the API's address as this page was reached, and the model names."""
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or "127.0.0.1:7860"
    scheme = request.headers.get("x-forwarded-proto") or ("https" if request.headers.get("x-forwarded-host") else "http")
    names = ", ".join(f"`{side.spec}`" for side in sides.available(ctx.workspace))
    key = (t("the app's `WORKBENCH_API_KEY`") if os.environ.get("WORKBENCH_API_KEY")
           else t("anything (no key is set; one is needed where the app is shared)"))
    return t("This app also answers as an OpenAI-compatible API. In SillyTavern: API **Chat Completion**, source "
             "**Custom (OpenAI-compatible)**, base URL `{url}`, API key: {key}. Models: {names} "
             "(a run's name answers with its adapter).", url=f"{scheme}://{host}/v1", key=key, names=names)


def render(ctx: Context) -> None:
    with gr.Row():
        adapter = gr.Dropdown(side_choices(ctx), value=sides.BASE, label=_("Answer with"), scale=4, elem_id="chat-adapter",
                              info=_("The base model, or a run's adapter on top of it: switching keeps the base loaded."))
        refresh = gr.Button(_("Refresh runs"), size="sm", scale=0, min_width=120, elem_id="chat-adapter-refresh")
        character = gr.Textbox(label=_("Character"), scale=2, elem_id="chat-character",
                               placeholder=_("Set by a character card (optional)"))
    note = gr.Markdown(elem_id="chat-note")
    system = gr.Textbox(label=_("System prompt"), lines=2, elem_id="chat-system",
                        placeholder=_("e.g. You are a cheerful pirate. (Empty: the model's default)"))
    chatbot = gr.Chatbot(label=_("Chat"), height=420, buttons=["copy", "copy_all"], elem_id="chatbot")
    with gr.Row():
        cut = gr.Markdown(visible=False, elem_id="chat-cut")
        more = gr.Button(_("Continue"), visible=False, scale=0, min_width=120, elem_id="chat-continue")
    with gr.Row():
        message = gr.Textbox(placeholder=_("Type a message and press Enter"), label=_("Message"), show_label=False, scale=5, elem_id="chat-input")
        send = gr.Button(_("Send"), variant="primary", scale=1, elem_id="chat-send")
    with gr.Row():
        stop_button = gr.Button(_("Stop"), elem_id="chat-stop")
        regenerate = gr.Button(_("Regenerate"))
        clear_button = gr.Button(_("Clear"), elem_id="chat-clear")
    with gr.Row(visible=False, elem_id="chat-choice") as choice_row:  # after a regeneration
        question_choice = gr.Markdown(elem_id="chat-choice-question")
        new_better = gr.Button(_("The new reply is better"), scale=0, min_width=190, elem_id="chat-new-better")
        earlier_better = gr.Button(_("The earlier one was better"), scale=0, min_width=190, elem_id="chat-earlier-better")
    stats = gr.Markdown(elem_id="chat-stats")
    with gr.Row():
        card = gr.UploadButton(_("Import character card"), file_types=[".json", ".png"], elem_id="chat-card")
        upload = gr.UploadButton(_("Import chat"), file_types=[".json"], elem_id="chat-import")
        export = gr.Button(_("Export chat"), elem_id="chat-export")
    with gr.Row(visible=False, elem_id="chat-confirm") as confirm:  # beside the import buttons
        question = gr.Markdown()
        replace_button = gr.Button(_("Replace"), variant="stop", scale=0, min_width=110, elem_id="chat-replace")
        keep_button = gr.Button(_("Keep"), variant="primary", scale=0, min_width=110, elem_id="chat-keep")
    exported = gr.File(label=_("Exported chat"), visible=False, elem_id="chat-export-file")
    with gr.Accordion(_("Sampling"), open=False, elem_id="sampling"):
        choice, values = sampling_controls()
        think = thinking_box("chat-thinking")
    with gr.Accordion(_("Use it from another chat app (SillyTavern, OpenAI API)"), open=False, elem_id="chat-api"):
        api_text = gr.Markdown(elem_id="chat-api-text")
    chosen = gr.State(sides.BASE)  # this session's side (the dropdown may show a refused choice for a moment)
    greeting = gr.State("")  # the character's first message: Clear starts the chat again from it
    lore = gr.JSON(None, visible="hidden", elem_id="chat-lorebook")  # a card's lorebook; on the page, so kept by REMEMBER
    pending = gr.State(None)  # an imported chat waiting for Replace or Keep
    kept = gr.BrowserState(None, storage_key="lora-workbench-chat")
    answered = gr.State(None)  # the side that wrote the last reply on screen (None: not known, e.g. imported)
    aside = gr.State(None)  # the reply before a regeneration, with the conversation it answers and its side

    private = {"api_visibility": "private"}
    streamed = [chatbot, stats, cut, more]
    offered = ([chatbot, system, chosen, aside], [answered, aside, choice_row, question_choice])
    for trigger in (message.submit, send.click):
        trigger(bind(add_user, ctx), [message, chatbot], [message, chatbot], **private).then(
            bind(hide_choice, ctx), None, choice_row, **private).then(
            bind(answer, ctx), [chatbot, system, lore, chosen, *values, think], streamed, **private).then(
            bind(offer, ctx), *offered, **private)
    regenerate.click(bind(set_aside, ctx), [chatbot, system, answered, aside], [chatbot, aside, choice_row],
                     **private).then(
        bind(answer, ctx), [chatbot, system, lore, chosen, *values, think], streamed, **private).then(
        bind(offer, ctx), *offered, **private)
    more.click(bind(go_on, ctx), [chatbot, system, lore, chosen, *values, think], streamed, **private).then(
        bind(offer, ctx), *offered, **private)
    for button, better in ((new_better, "new"), (earlier_better, "earlier")):
        button.click(bind(mark, ctx, better), [chatbot, system, lore, answered, aside], [aside, choice_row, note],
                     **private)
    stop_button.click(bind(stop, ctx), None, None, **private)
    clear_button.click(bind(clear, ctx), greeting, streamed, **private).then(
        bind(forget, ctx), None, [answered, aside, choice_row], **private)
    adapter.input(bind(choose, ctx), [adapter, chosen], [chosen, adapter, note], **private)
    refresh.click(bind(refresh_sides, ctx), chosen, adapter, **private)
    follow(ctx, bind(refresh_sides, ctx), chosen, adapter)

    on_screen = [chatbot, system, character, greeting, lore]
    shown = [system, character, chatbot, greeting, lore, note, stats, pending, confirm, question, cut, more]
    card.upload(bind(import_card, ctx), [card, *on_screen], shown, **private)
    upload.upload(bind(import_chat, ctx), [upload, *on_screen], shown, **private)
    replace_button.click(bind(replace, ctx), pending, shown, **private).then(
        bind(forget, ctx), None, [answered, aside, choice_row], **private)
    keep_button.click(bind(keep, ctx), None, [pending, confirm, note], **private)
    export.click(bind(export_chat, ctx), [*on_screen, chosen, choice], exported, **private)

    # The browser reads its storage when the tab is first drawn (not at page load): restore when it is shown.
    ctx.tab.select(bind(recall, ctx), [kept, *on_screen], [system, character, chatbot, greeting, lore, choice],
                   show_progress="hidden", **private)
    # Stored by the browser itself at each change (no request to the server), in a Chat's shape.
    gr.on([chatbot.change, system.change, character.change, choice.change], None,
          [chatbot, system, character, lore, choice], kept, js=REMEMBER, **private)

    gr.api(bind(generate, ctx), api_name="generate")
    follow(ctx, bind(api_info, ctx), None, api_text)
