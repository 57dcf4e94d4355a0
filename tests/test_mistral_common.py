"""Mistral judged by Mistral's own code: mistral-common (requirements-dev.txt) ships Mistral-Nemo's real
tokenizer (tekken_240718.json), its reference chat encoding and the chat templates it generates. The
app renders a Nemo conversation to the same token ids, and a Nemo-shaped tiny model with that
tokenizer goes through data -> train -> chat -> export."""

from __future__ import annotations

import json
from pathlib import Path

import mistral_common
import pytest
import torch
from mistral_common.integrations.chat_templates.chat_templates import (convert_tokenizer_to_chat_template,
                                                                        generate_chat_template)
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.tokens.tokenizers.base import TokenizerVersion
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from engine.chat import families
from engine.chat.generation import render_prompt
from engine.chat.templates import prepare_tokenizer, stop_token_ids
from engine.data.render import encode, preview

TEKKEN = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
SYSTEM = {"role": "system", "content": "You are a pirate. Answer in one line."}
CHATS = [
    [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Arr, a sailor of the seas."}],
    [SYSTEM, {"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "Arr, a sailor."},
     {"role": "user", "content": "Where to, captain?"}, {"role": "assistant", "content": "To Tortuga, then home!"}],
    [SYSTEM, {"role": "user", "content": "Un mot?"}, {"role": "assistant", "content": "Trésor."},
     {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4, matey."},
     {"role": "user", "content": "Et après ?"}, {"role": "assistant", "content": "Le rhum 🍺."}],
]


@pytest.fixture(scope="module")
def nemo_tokenizer():
    """Nemo's tekken vocabulary, converted by transformers' own tekken converter, with the app's Nemo
    template: what a Mistral-Nemo-Instruct-2407 folder gives the app."""
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    template = families.by_key("mistral-nemo").template_text()
    return prepare_tokenizer(convert_tekken_tokenizer(str(TEKKEN), chat_template=template))


def reference(messages, mode=ValidationMode.finetuning) -> list[int]:
    return MistralTokenizer.from_file(str(TEKKEN), mode=mode).encode_chat_completion(
        ChatCompletionRequest(messages=messages)).tokens


def test_the_mistral_templates_are_the_ones_mistral_common_generates():
    assert families.by_key("mistral-nemo").template_text() == convert_tokenizer_to_chat_template(str(TEKKEN))
    v7 = generate_chat_template(False, TokenizerVersion.v7, False, False, False, None, False, True, None, None, None)
    assert families.by_key("mistral-v7").template_text() == v7


@pytest.mark.parametrize("chat", CHATS, ids=["one-turn", "system-two-turns", "system-three-turns"])
def test_training_rows_are_mistral_commons_token_ids(nemo_tokenizer, chat):
    assert families.of_template(nemo_tokenizer.chat_template).key == "mistral-nemo"
    assert encode({"messages": chat}, nemo_tokenizer)["input_ids"] == reference(chat)
    replies = [m["content"] + "</s>" for m in chat if m["role"] == "assistant"]
    assert [piece for piece, on in preview({"messages": chat}, nemo_tokenizer).segments if on] == replies


@pytest.mark.parametrize("chat", CHATS, ids=["one-turn", "system-two-turns", "system-three-turns"])
def test_chat_prompts_are_mistral_commons_token_ids(nemo_tokenizer, chat):
    asked = chat[:-1]
    assert render_prompt(nemo_tokenizer, asked)[0].tolist() == reference(asked, ValidationMode.test)
    assert nemo_tokenizer.convert_tokens_to_ids("</s>") in stop_token_ids(nemo_tokenizer)


@pytest.fixture(scope="module")
def nemo_model(nemo_tokenizer, tmp_path_factory) -> Path:
    """A Nemo-shaped model (MistralForCausalLM, head_dim 128 like Nemo's, Nemo's vocabulary) made tiny."""
    from transformers import MistralConfig, MistralForCausalLM

    folder = tmp_path_factory.mktemp("models") / "tiny-nemo"
    config = MistralConfig(vocab_size=len(nemo_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024,
                           rope_theta=1_000_000.0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    torch.manual_seed(0)
    MistralForCausalLM(config).save_pretrained(folder)
    nemo_tokenizer.save_pretrained(folder)
    return folder


def test_a_nemo_model_goes_through_data_train_chat_and_export(workspace, nemo_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.exporter import export
    from engine.train import runs
    from engine.train.config import validate
    from tests.test_train_runs import ended, wait_for

    data = workspace.datasets / "pirate.jsonl"
    data.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CHATS * 4))
    config = validate({
        "model": {"name_or_path": str(nemo_model), "max_seq_length": 128}, "dataset": str(data),
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 5e-3, "save_steps": 3, "logging_steps": 1},
        "probes": {"prompts": ["Who are you?"], "max_new_tokens": 4},
    })
    run = wait_for(runs.start_run(workspace, config, name="nemo").name, workspace, ended, timeout=300)
    assert run.state == "completed", run.status

    # Chat with the trained adapter: its tokenizer still renders as mistral-common does.
    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    asked = CHATS[1][:-1]
    prompt = render_prompt(tokenizer, asked)
    assert prompt[0].tolist() == reference(asked, ValidationMode.test)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(nemo_model), run.adapter)
    reply = model.generate(prompt, max_new_tokens=8, do_sample=False,
                           eos_token_id=stop_token_ids(tokenizer, model.generation_config))
    assert reply.shape[1] > prompt.shape[1]

    result = export(workspace, "nemo", "adapter")
    assert result.passed, result.summary()
    assert (result.path / "chat_template.jinja").read_text() == families.by_key("mistral-nemo").template_text()


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]


def weather_call(city, id=None):
    call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}
    return {**call, "id": id} if id else call


TOOL_CHATS = [
    # OpenAI-style ids, longer than Mistral's 9 letters and digits, and arguments as a JSON string
    [{"role": "user", "content": "Weather in Paris?"},
     {"role": "assistant", "content": "", "tool_calls": [
         {**weather_call("Paris", "call_abc123def456"), "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
     {"role": "tool", "tool_call_id": "call_abc123def456", "name": "get_weather", "content": "Sunny"},
     {"role": "assistant", "content": "It is sunny."}],
    # no ids at all (a ShareGPT function_call row), two calls answered in order
    [{"role": "user", "content": "Paris or Rome?"},
     {"role": "assistant", "content": "", "tool_calls": [weather_call("Paris"), weather_call("Rome")]},
     {"role": "tool", "name": "get_weather", "content": "Sunny"},
     {"role": "tool", "name": "get_weather", "content": "Rain"},
     {"role": "assistant", "content": "Paris: sunny; Rome: rain."}],
]


@pytest.mark.parametrize("chat", TOOL_CHATS, ids=["long-ids", "no-ids"])
def test_tool_call_rows_get_mistral_ids_and_mistral_commons_token_ids(nemo_tokenizer, chat):
    """Mistral takes tool-call ids of exactly 9 letters and digits; a row's ids are made so, the same
    on every rendering, each result keeping its own call's id, and the row then encodes to
    mistral-common's token ids for the conversation with those ids."""
    import re

    from engine.data.render import with_call_ids

    fixed = with_call_ids(chat, 9)
    calls = [c["id"] for m in fixed for c in m.get("tool_calls", [])]
    results = [m["tool_call_id"] for m in fixed if m["role"] == "tool"]
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in calls) and results == calls and len(set(calls)) == len(calls)
    assert with_call_ids(chat, 9) == fixed and with_call_ids(fixed, 9) == fixed
    row = {"messages": chat, "tools": json.dumps(TOOLS)}
    ids = MistralTokenizer.from_file(str(TEKKEN), mode=ValidationMode.finetuning).encode_chat_completion(
        ChatCompletionRequest(messages=fixed, tools=TOOLS)).tokens
    assert encode(row, nemo_tokenizer)["input_ids"] == ids
    trained = "".join(piece for piece, on in preview(row, nemo_tokenizer).segments if on)
    assert calls[0] in trained and "Sunny" not in trained
