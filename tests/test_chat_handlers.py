"""The Chat and Model tabs' handlers called as plain functions of a Context, no browser, on a real
workspace and the default model: a reply cut at the length limit says so and Continue extends that same
message; after Regenerate the better of the two replies is saved as a preference pair; a card or chat imported over a conversation waits for Replace or Keep; what the browser
keeps brings the chat back; 4-bit is refused on this CPU machine, in the form and in the handler."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gradio as gr
import pytest

from engine.chat import choices
from engine.chat.generation import render_prompt
from engine.chat.models import ModelManager
from engine.compare import sides
from engine.hardware import detect
from engine.train import pairs
from ui import build, chat_tab, model_tab
from ui.context import Context
from ui.widgets import bind

CARD = Path("examples/cards/captain_bess.png")
ARCHIVIST = Path("tests/data/card_v3_archivist.json")  # a V3 card with the lorebook 'Eldoria' (4 entries)
BESS = "Captain Barnacle Bess"


def precise(max_new_tokens: int) -> list:
    """The sampling form's values: the Precise preset (the same answer every time), `max_new_tokens` long."""
    return [0.0, 1.0, 0, 0.0, 1.0, max_new_tokens, "", True]  # the last: the thinking switch


@pytest.fixture
def ctx(workspace):
    return Context(workspace, ModelManager(workspace), detect())


def last(generator):
    item = None
    for item in generator:
        pass
    return item


def test_a_reply_cut_at_the_length_limit_says_so_and_continue_extends_that_message(ctx):
    ctx.manager.load("default")
    request = gr.Request(session_hash="one-browser")
    _, history = chat_tab.add_user(ctx, "Tell me about the sea.", [])
    history, stats, cut, more = last(chat_tab.answer(ctx, history, "", None, sides.BASE, *precise(6), request=request))
    first = history[-1]["content"]
    assert [m["role"] for m in history] == ["user", "assistant"] and first
    assert "stopped at the length limit of 6 tokens" in stats and "finished:" not in stats
    assert cut.visible and "stopped at the length limit of 6 tokens" in cut.value and more.visible

    # What Continue asks for: more of the same assistant message, not a new turn.
    prompt = ctx.manager.loaded.tokenizer.decode(render_prompt(ctx.manager.loaded.tokenizer,
                                                               chat_tab.to_messages(history, ""))[0])
    assert prompt.endswith(first) and prompt.count("<|im_start|>assistant") == 1

    history, stats, cut, more = last(chat_tab.go_on(ctx, history, "", None, sides.BASE, *precise(6), request=request))
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[-1]["content"].startswith(first) and len(history[-1]["content"]) > len(first)
    assert more.visible  # cut again: a story does not end in 12 tokens

    # A reply that ends by itself offers no Continue.
    ended = chat_tab._cut_note(None)
    assert ended[0].visible is False and ended[1].visible is False
    with pytest.raises(gr.Error, match="no reply to continue"):
        last(bind(chat_tab.go_on, ctx)([{"role": "user", "content": "Hi"}], "", None, sides.BASE, *precise(6),
                                        request=request))


def sampled(max_new_tokens: int, seed: int) -> list:
    """The sampling form's values: temperature 1 with a fixed seed, so two seeds give two different replies."""
    return [1.0, 1.0, 0, 0.0, 1.0, max_new_tokens, str(seed), True]


def test_the_better_of_a_regenerated_reply_and_the_earlier_one_is_saved_as_a_pair(ctx):
    ctx.manager.load("default")
    request = gr.Request(session_hash="one-browser")
    system = "Be brief."
    _, history = chat_tab.add_user(ctx, "Name a colour.", [])
    history, *_ = last(chat_tab.answer(ctx, history, system, None, sides.BASE, *sampled(8, seed=1), request=request))
    answered, aside, row, question = chat_tab.offer(ctx, history, system, sides.BASE, None)
    assert (answered, aside, row.visible, question) == (sides.BASE, None, False, "")  # one reply: nothing to choose
    first = history[-1]["content"]

    # Regenerate: the reply is kept aside with the conversation it answers and the side that wrote it.
    asked, aside, row = chat_tab.set_aside(ctx, history, system, answered, None)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    assert asked == history[:-1] and row.visible is False
    assert aside == {"prompt": conversation, "reply": first, "side": sides.BASE}
    # A regeneration that got no reply (the model was busy) keeps the earlier reply aside for the next one.
    assert chat_tab.set_aside(ctx, asked, system, answered, aside)[1] == aside
    history, *_ = last(chat_tab.answer(ctx, asked, system, None, sides.BASE, *sampled(8, seed=2), request=request))
    second = history[-1]["content"]
    assert second and second != first
    answered, aside, row, question = chat_tab.offer(ctx, history, system, sides.BASE, aside)
    assert row.visible and "Which reply is better?" in question and first.strip().splitlines()[0] in question

    kept, row, note = chat_tab.mark(ctx, "earlier", history, system, None, answered, aside)
    assert kept is None and row.visible is False and "Saved the earlier reply as better" in note and "(1 chat" in note
    [saved] = choices.records(ctx.workspace)
    assert saved["prompt"] == conversation and saved["sides"] == {"chosen": sides.BASE, "rejected": sides.BASE}
    assert saved["chosen"] == [{"role": "assistant", "content": first}]
    assert saved["rejected"] == [{"role": "assistant", "content": second}]
    assert pairs.from_chat(ctx.workspace).records == [{k: saved[k] for k in ("prompt", "chosen", "rejected")}]

    # Once the chat moves on, the earlier reply no longer answers it: nothing is asked, a late press is refused.
    _, talk = chat_tab.add_user(ctx, "And another?", history)
    talk = talk + [{"role": "assistant", "content": "Blue."}]
    answered, stale, row, _ = chat_tab.offer(ctx, talk, system, sides.BASE, aside)
    assert stale is None and row.visible is False
    with pytest.raises(gr.Error, match="no two replies to choose between"):
        bind(chat_tab.mark, ctx, "new")(talk, system, None, answered, aside)
    assert len(choices.records(ctx.workspace)) == 1


def test_a_card_over_a_conversation_waits_for_replace_or_keep(ctx):
    before = hashlib.sha256(CARD.read_bytes()).hexdigest()
    talk = [{"role": "user", "content": "Where are we?"}, {"role": "assistant", "content": "At sea."}]
    shown = chat_tab.import_card(ctx, str(CARD), talk, "Be brief.", "", "", None)
    system, character, chatbot, greeting, lore, note, stats, pending, confirm, question, cut, more = shown
    assert all(v == gr.skip() for v in (system, character, chatbot, greeting, lore, note, stats))  # nothing changed yet
    assert confirm.visible and "Replace the current conversation" in question and BESS in question
    assert pending["chat"]["character"] == BESS

    pending, confirm, note = chat_tab.keep(ctx)
    assert pending is None and confirm.visible is False and "Kept the current conversation" in note
    assert hashlib.sha256(CARD.read_bytes()).hexdigest() == before

    *_, pending, _, _, _, _ = chat_tab.import_card(ctx, str(CARD), talk, "Be brief.", "", "", None)
    system, character, chatbot, greeting, note, *_ = chat_tab.replace(ctx, pending)
    assert character == BESS and system.startswith(f"You are {BESS}.")
    assert [(m["role"], chat_tab.text_of(m["content"])) for m in chatbot.value] == [("assistant", greeting)]


def test_a_card_on_an_empty_chat_or_over_its_own_greeting_opens_at_once(ctx):
    system, character, _, greeting, *_ = chat_tab.import_card(ctx, str(CARD), [], "", "", "", None)
    assert character == BESS and greeting.startswith("Ahoy")
    opened = chat_tab.import_card(ctx, str(CARD), [{"role": "assistant", "content": greeting}], system, character,
                                  greeting, None)
    assert opened[1] == BESS and opened[8].visible is False  # only the greeting was there: no question


def test_a_cards_lorebook_joins_a_replys_prompt_when_its_keywords_come_up_and_travels_with_the_chat(ctx):
    ctx.manager.load("default")
    system, character, chatbot, greeting, lore, note, *_ = chat_tab.import_card(ctx, str(ARCHIVIST), [], "", "", "", None)
    assert lore["name"] == "Eldoria" and "lorebook 'Eldoria' (4 entries) is used in this chat" in note
    assert "silver mines" not in system  # an entry joins a reply's prompt only when it is called up

    prompts, stream = [], ctx.manager.stream
    ctx.manager.stream = lambda messages, *a, **k: (prompts.append(messages), stream(messages, *a, **k))[1]
    request = gr.Request(session_hash="lore")
    _, history = chat_tab.add_user(ctx, "Tell me about the kingdom.", chatbot.value)
    history, stats, *_ = last(chat_tab.answer(ctx, history, system, lore, sides.BASE, *precise(4), request=request))
    sent = prompts[-1][0]["content"]
    assert sent.startswith(system) and "Eldoria is a mountain kingdom of silver mines" in sent
    assert "low magic" in sent and "sealed" not in sent  # the always-on entry; not the one nobody asked about
    assert "Lorebook entries in this reply's prompt: Tone, The kingdom." in stats

    saved = chat_tab.export_chat(ctx, history, system, character, greeting, lore, sides.BASE, "Precise").value
    reopened = chat_tab.import_chat(ctx, saved["path"], [], "", "", "", None)
    assert reopened[4] == lore and reopened[0] == system


def test_a_chat_choice_keeps_the_lorebook_entries_the_model_saw(ctx):
    """A pair chosen in a chat whose lorebook added an entry to the reply's prompt is saved with the
    system prompt the model received (the card's own, then the entry), not the one typed."""
    ctx.manager.load("default")
    system, _, chatbot, _, lore, *_ = chat_tab.import_card(ctx, str(ARCHIVIST), [], "", "", "", None)
    prompts, stream = [], ctx.manager.stream
    ctx.manager.stream = lambda messages, *a, **k: (prompts.append(messages), stream(messages, *a, **k))[1]
    request = gr.Request(session_hash="lore-choice")
    _, history = chat_tab.add_user(ctx, "Tell me about the kingdom.", chatbot.value)
    history, *_ = last(chat_tab.answer(ctx, history, system, lore, sides.BASE, *sampled(8, seed=1), request=request))
    answered, aside, *_ = chat_tab.offer(ctx, history, system, sides.BASE, None)
    first = history[-1]["content"]
    asked, aside, _ = chat_tab.set_aside(ctx, history, system, answered, aside)
    history, *_ = last(chat_tab.answer(ctx, asked, system, lore, sides.BASE, *sampled(8, seed=2), request=request))
    answered, aside, row, _ = chat_tab.offer(ctx, history, system, sides.BASE, aside)
    assert row.visible and history[-1]["content"] != first

    chat_tab.mark(ctx, "new", history, system, lore, answered, aside)
    [saved] = choices.records(ctx.workspace)
    received = saved["prompt"][0]["content"]
    assert received.startswith(system) and "Eldoria is a mountain kingdom of silver mines" in received
    assert "silver mines" not in system  # the typed system prompt lacks it; the model's prompt had it
    assert prompts[0] == prompts[1] == saved["prompt"]  # both replies answered exactly the saved prompt
    assert saved["chosen"] == [{"role": "assistant", "content": history[-1]["content"]}]


def test_what_the_browser_keeps_brings_the_chat_back_to_a_blank_page_only(ctx):
    # What the page's REMEMBER script stores: the Chatbot's messages as the browser holds them (text in parts).
    talk = [{"role": "assistant", "content": [{"type": "text", "text": "Ahoy!"}], "metadata": None},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}], "metadata": None}]
    kept = {"format": "lora-workbench-chat", "version": 1, "messages": talk, "system": "You are a pirate.",
            "character": "Bess", "preset": "Roleplay chat"}
    blank = ([], None, None, "", None)  # a page just drawn: its text boxes not yet filled in
    system, character, chatbot, greeting, lore, preset = chat_tab.recall(ctx, kept, *blank)
    assert (system, character, greeting, lore, preset) == ("You are a pirate.", "Bess", "Ahoy!", None, "Roleplay chat")
    assert [(m["role"], chat_tab.text_of(m["content"])) for m in chatbot.value] == [("assistant", "Ahoy!"), ("user", "Hello")]
    typing = chat_tab.recall(ctx, kept, [], "You are a sail", "", "", None)  # the person is typing: left alone
    assert typing == (gr.skip(),) * 6
    for nothing in (None, "text", {"messages": [{"role": "narrator", "content": "x"}]}):  # none kept, or damaged
        assert chat_tab.recall(ctx, nothing, *blank) == (gr.skip(),) * 6


def test_four_bit_cannot_be_chosen_or_asked_for_on_this_machine(ctx):
    demo = build(ctx)
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-4bit")
    assert box.interactive is False and box.info.key == "4-bit needs an NVIDIA GPU; this machine has none."  # gr.I18n
    with pytest.raises(gr.Error, match="4-bit needs an NVIDIA GPU; this machine has none. Turn off 4-bit"):
        bind(model_tab.load, ctx)(model_tab.DEFAULT_CHOICE, True, 2048, False)
    assert ctx.manager.loaded is None


def test_the_model_list_follows_the_workspace(ctx, tiny_model_path):
    assert "tiny-llama" not in model_tab.refresh(ctx, model_tab.DEFAULT_CHOICE).choices
    (ctx.workspace.models / "tiny-llama").symlink_to(tiny_model_path, target_is_directory=True)
    update = model_tab.refresh(ctx, "owner/typed-by-hand")
    assert ("tiny-llama", "tiny-llama") in update.choices and update.value == "owner/typed-by-hand"
