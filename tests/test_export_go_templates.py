"""Every Modelfile TEMPLATE the app writes, judged by Go's own text/template with Ollama's message
structure (tests/go_judge.py builds tools/gotemplate/main.go): the prompt Ollama renders equals the
training rendering for multi-turn chats, with and without a system prompt, for every family.

The families' chat templates are trl's copies of the models' own (Qwen, Llama 3.x, Gemma, Phi-3),
SmolLM2's from the tiny model, and Mistral's written out below (trl ships none)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine.chat.sampling import preset
from engine.chat.templates import prepare_tokenizer
from engine.export.gotemplate import render_go
from engine.export.modelfile import (PROBE_TOOLS, TOOL_PROBES, accepts, alike, go_template_for, modelfile_text,
                                     ollama_data, read_modelfile, render_for_ollama)
from engine.export.source import plain_template
from go_judge import go_render

# Mistral-Nemo-Instruct-2407's template (tekken, "v3"), its tool branches left out: a chat without tools
# never enters them. The system prompt goes into the last user turn.
MISTRAL_NEMO = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- set ns = namespace(index=0) %}
{%- for message in loop_messages %}
    {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
        {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif %}
    {%- set ns.index = ns.index + 1 %}
{%- endfor %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST]" + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST]" + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message["role"] == "assistant" %}
        {{- message["content"] + eos_token}}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}"""
# Mistral-7B-Instruct-v0.3's: the same v3 placement, with a space after [INST] and before a reply.
MISTRAL_V03 = MISTRAL_NEMO.replace('"[INST]" +', '"[INST] " +').replace(
    '{{- message["content"] + eos_token}}', '{{- " " + message["content"]|trim + eos_token}}')
# Mistral-Small-24B-Instruct-2501's ("v7"): a [SYSTEM_PROMPT] turn, its own one when the chat has none.
MISTRAL_V7 = """{%- set default_system_message = "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI." %}
{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = default_system_message %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}
{%- for message in loop_messages %}
    {%- if message['role'] == 'user' %}
        {{- '[INST]' + message['content'] + '[/INST]' }}
    {%- elif message['role'] == 'system' %}
        {{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}
    {%- elif message['role'] == 'assistant' %}
        {{- message['content'] + eos_token }}
    {%- else %}
        {{- raise_exception('Only user, system and assistant roles are supported!') }}
    {%- endif %}
{%- endfor %}"""

TRL = {"qwen2_5": (None, "<|im_end|>"), "qwen3": (None, "<|im_end|>"), "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
       "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"), "llama3_2": ("<|begin_of_text|>", "<|eot_id|>"),
       "gemma": ("<bos>", "<eos>"), "gemma3": ("<bos>", "<eos>"), "phi3": ("<s>", "<|endoftext|>"),
       "phi3_5": ("<s>", "<|endoftext|>")}
MISTRAL = {"mistral_nemo": MISTRAL_NEMO, "mistral_v0_3": MISTRAL_V03, "mistral_small_v7": MISTRAL_V7}

U1, A1, U2, A2, U3 = ({"role": r, "content": c} for r, c in [
    ("user", "Hello! Who are you?"), ("assistant", "I am your assistant."), ("user", "Tell me a fact about the sea."),
    ("assistant", "It covers most of the Earth."), ("user", "And one about rivers?")])
SYSTEM = {"role": "system", "content": "You are a helpful assistant who answers briefly."}
CHATS = {"one turn": [U1], "multi-turn": [U1, A1, U2, A2, U3], "multi-turn with a system prompt": [SYSTEM, U1, A1, U2, A2, U3]}


def word_tokenizer(bos: str | None, eos: str, adds_bos: bool = True):
    """A word-level tokenizer that puts `bos` first by itself (as Llama 3's, Gemma's and Mistral's do), so the
    BOS a chat template writes is left for llama.cpp to add; `adds_bos=False` leaves it to the template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = [w for w in (bos, eos, "x") if w]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=eos))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos and adds_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)


SMOLLM2 = ("smollm2", "smollm2_chatml", "smollm2_alpaca")  # the app's template choices for the default model


FAMILIES = [*SMOLLM2, *TRL, *MISTRAL]


def make_case(name: str, tiny_model_path: Path):
    """(family name, tokenizer, the family's chat template, the Go template the app writes for it)."""
    if name in SMOLLM2:
        choice = {"smollm2": "model", "smollm2_chatml": "chatml", "smollm2_alpaca": "alpaca"}[name]
        tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_model_path), template_choice=choice)
        template = plain_template(tok.chat_template)
    elif name in MISTRAL:
        tok, template = word_tokenizer("<s>", "</s>"), MISTRAL[name]
    else:
        import trl

        tok = word_tokenizer(*TRL[name])
        template = (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()
    return name, tok, template, go_template_for(tok, template)


@pytest.fixture(params=FAMILIES)
def case(request, tiny_model_path):
    return make_case(request.param, tiny_model_path)


def chats_for(tok, template) -> dict:
    """CHATS, less those the family's own template refuses (Gemma 2 has no system role)."""
    return {k: chat for k, chat in CHATS.items() if accepts(tok, template, chat)}


def test_go_renders_every_chat_like_training(case):
    name, tok, template, go = case
    chats = chats_for(tok, template)
    assert "multi-turn" in chats and ("multi-turn with a system prompt" in chats) == (name != "gemma")
    if name.startswith("llama3"):  # Llama 3's templates also keep a system turn that does not come first
        chats["a late system prompt"] = [U1, A1, SYSTEM, U2]
    for what, chat in chats.items():
        assert go_render(go, chat) == render_for_ollama(tok, template, chat), f"{name}, {what}"
    if name in ("llama3_1", "llama3_2"):  # the dated preamble, with the day of the export for Llama 3.2
        assert "Cutting Knowledge Date: December 2023" in go
    if name in ("smollm2", "qwen2_5", "mistral_small_v7"):  # the model's own system prompt when a chat has none
        assert go_render(go, [U1]) == render_for_ollama(tok, template, [U1]) and "{{ if and (eq $i 0)" in go


@pytest.mark.parametrize("name", [f for f in FAMILIES if f != "gemma"])  # Gemma 2's template has no system role
def test_a_modelfile_system_prompt_renders_like_training_with_it(name, tiny_model_path, tmp_path):
    """Ollama puts the Modelfile's SYSTEM first when the chat has none; the export's Modelfile, read back."""
    name, tok, template, go = make_case(name, tiny_model_path)
    system = "You are Ann, a ship's cook. Answer as Ann."
    chat = [U1, A1, U2]
    (tmp_path / "Modelfile").write_text(modelfile_text(f"{name}.gguf", go, [tok.eos_token], preset("Precise"),
                                                       "Precise", 2048, system=system, run=name))
    written = read_modelfile(tmp_path / "Modelfile")
    assert written["template"] == go and written["system"] == system
    want = render_for_ollama(tok, template, [{"role": "system", "content": system}, *chat])
    assert go_render(written["template"], chat, system=written["system"]) == want


@pytest.mark.parametrize("name", [n for n in FAMILIES if n in MISTRAL or (n in TRL and TRL[n][0])])
def test_a_bos_the_tokenizer_leaves_to_the_template_is_written_by_the_modelfile_too(name):
    """A tokenizer that adds no BOS itself (a fine-tune's, or SmolLM2's vocabulary with a family's tokens)
    leaves the template's BOS in the prompt text, and the GGUF adds none: the Modelfile must write it."""
    import trl

    bos = TRL[name][0] if name in TRL else "<s>"
    tok = word_tokenizer(bos, TRL[name][1] if name in TRL else "</s>", adds_bos=False)
    template = MISTRAL[name] if name in MISTRAL else (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()
    go = go_template_for(tok, template)
    writes_bos = render_for_ollama(tok, template, [U1]).startswith(bos)  # Phi-3's templates write none
    assert go.startswith(bos) == writes_bos and writes_bos == (not name.startswith("phi3"))
    for what, chat in chats_for(tok, template).items():
        assert go_render(go, chat) == render_for_ollama(tok, template, chat), f"{name}, {what}"


def test_the_apps_own_go_evaluator_agrees_with_go(case):
    """The app picks the template and checks the Modelfile at export time with engine/export/gotemplate.py
    (no Go toolchain on a user's machine); on every family it must say what Go says."""
    name, tok, template, go = case
    for what, chat in chats_for(tok, template).items():
        assert render_go(go, ollama_data(chat)) == go_render(go, chat), f"{name}, {what}"


def test_mistral_puts_the_system_prompt_where_each_version_does():
    nemo, v03, v7 = (go_template_for(word_tokenizer("<s>", "</s>"), MISTRAL[n]) for n in MISTRAL)
    chat = CHATS["multi-turn with a system prompt"]
    assert go_render(nemo, chat).endswith(f"[INST]{SYSTEM['content']}\n\n{U3['content']}[/INST]")
    assert go_render(nemo, [U1, A1, U2]) == f"[INST]{U1['content']}[/INST]{A1['content']}</s>[INST]{U2['content']}[/INST]"
    assert go_render(v03, [U1, A1, U2]).startswith(f"[INST] {U1['content']}[/INST] {A1['content']}</s>")
    assert go_render(v7, chat).startswith(f"[SYSTEM_PROMPT]{SYSTEM['content']}[/SYSTEM_PROMPT][INST]")
    assert go_render(v7, [U1]).startswith("[SYSTEM_PROMPT]You are Mistral Small 3")


def test_a_broken_template_is_refused_by_go_itself():
    with pytest.raises(AssertionError, match="unexpected EOF|not defined|unclosed"):
        go_render("{{ if .System }}x", [U1])


# The families whose templates have a syntax for tool calls, with those branches (trl's Qwen and Llama
# copies, the app's Mistral templates generated by mistral-common).
TOOL_FAMILIES = {"qwen2_5": "trl", "qwen3": "trl", "llama3_1": "trl", "llama3_2": "trl", "mistral-nemo": "family",
                 "mistral-v7": "family"}


def tool_case(name: str):
    from engine.chat import families

    if TOOL_FAMILIES[name] == "trl":
        _, tok, template, _ = make_case(name, None)
    else:
        tok, template = word_tokenizer("<s>", "</s>"), families.by_key(name).template_text()
    return tok, template, go_template_for(tok, template)


TOOL_CHATS = {
    "a call and its result": list(TOOL_PROBES[0]),
    "two calls, their results, a reply and a question, with a system prompt": list(TOOL_PROBES[1]),
    "a call after a reply, its arguments in their own order, with a system prompt": [
        SYSTEM, U1, A1, {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "abcDEF123", "type": "function", "function": {
            "name": "get_weather", "arguments": {"unit": "celsius", "city": "Oslo"}}}]},
        {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather", "content": "Snow, -3 C"}],
}


@pytest.mark.parametrize("name", TOOL_FAMILIES)
def test_tool_calls_render_through_go_like_training(name):
    """Ollama hands the template the request's tools, each assistant message's tool calls and the tool
    messages; Go renders them as the training template does. Ollama writes the tools' and the
    arguments' JSON itself (compact, its own key order), so that JSON is compared as JSON; all other
    text byte for byte."""
    tok, template, go = tool_case(name)
    assert "ToolCalls" in go and "$.Tools" in go
    accepted = {what: chat for what, chat in TOOL_CHATS.items() if accepts(tok, template, chat, PROBE_TOOLS)}
    assert len(accepted) == (2 if name.startswith("llama") else 3)  # Llama 3.x takes one call a message
    for what, chat in accepted.items():
        want = render_for_ollama(tok, template, chat, PROBE_TOOLS)
        got = go_render(go, chat, tools=PROBE_TOOLS)
        assert alike(got, want), f"{name}, {what}:\n{got!r}\n{want!r}"
        assert render_go(go, ollama_data(chat, tools=PROBE_TOOLS)) == got, f"{name}, {what}: the app's evaluator"
    for what, chat in chats_for(tok, template).items():  # chats without tools stay byte for byte equal
        assert go_render(go, chat) == render_for_ollama(tok, template, chat), f"{name}, {what}"
    assert not alike("[TOOL_CALLS]" + got, want)


def test_alike_compares_json_as_json_and_all_else_exactly():
    assert alike('<tool_call>{"a":1,"b":[2]}</tool_call>', '<tool_call>{"b": [2], "a": 1}</tool_call>')
    assert not alike('<tool_call>{"a":1}</tool_call>', '<tool_call>{"a": 2}</tool_call>')
    assert not alike('<tool_call> {"a":1}', '<tool_call>{"a": 1}')
