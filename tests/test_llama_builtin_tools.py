"""Llama 3.1's built-in tools (brave_search, wolfram_alpha, code_interpreter) on a tiny Llama with
SmolLM2's vocabulary and Llama 3.1's real chat template (trl's copy): a row whose call names one
renders as the template writes it (`<|python_tag|>name.call(...)` ending on `<|eom_id|>`), the call
and the final reply are trained, the ipython result is not, and chat stops on `<|eom_id|>`."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl

from engine.chat import families
from engine.chat.templates import prepare_tokenizer, stop_token_ids
from engine.data.render import encode, preview
from tests.model_shapes import family_model, family_tokenizer

LLAMA_3_1 = (Path(trl.__file__).parent / "chat_templates" / "llama3_1.jinja").read_text(encoding="utf-8")
CALL = {"id": "c1", "type": "function", "function": {"name": "brave_search", "arguments": {"query": "Paris news"}}}
ROW = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is new in Paris?"},
       {"role": "assistant", "content": "", "tool_calls": [CALL]},
       {"role": "ipython", "content": "Sunny, a new bridge."},
       {"role": "assistant", "content": "A new bridge, and sun."}]


@pytest.fixture(scope="module")
def tok(default_model_path):
    """Like Llama 3's own, the tokenizer puts <|begin_of_text|> first by itself (llama.cpp adds it, so
    the Modelfile's TEMPLATE leaves it out)."""
    from tokenizers import processors

    tok = prepare_tokenizer(family_tokenizer(default_model_path, "llama3", LLAMA_3_1))
    bos = ("<|begin_of_text|>", tok.bos_token_id)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos[0]} $A", special_tokens=[bos])
    assert tok("x")["input_ids"][0] == tok.bos_token_id
    return tok


def test_the_llama_3_1_template_is_the_llama3_family():
    assert families.of_template(LLAMA_3_1) == families.by_key("llama3")


def test_a_built_in_call_renders_and_trains_as_the_template_writes_it(tok):
    p = preview({"messages": ROW}, tok)
    assert p.text == tok.apply_chat_template(ROW, builtin_tools=["brave_search"], tokenize=False)
    assert "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools: brave_search\n\n" in p.text
    trained = [piece for piece, on in p.segments if on]
    assert trained == ['<|python_tag|>brave_search.call(query="Paris news")<|eom_id|>',
                       "A new bridge, and sun.<|eot_id|>"]
    # The result: an ipython turn holding it as a JSON string (the template's tojson), not trained.
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"Sunny, a new bridge."<|eot_id|>' in p.text
    # A "tool" result renders as the same ipython turn; OpenAI's JSON-string arguments as the object.
    as_tool = [{**m, "role": "tool"} if m["role"] == "ipython" else m for m in ROW]
    openai = [{**m, "tool_calls": [{**CALL, "function": {**CALL["function"], "arguments": '{"query":"Paris news"}'}}]}
              if m.get("tool_calls") else m for m in as_tool]
    assert preview({"messages": openai}, tok).text == p.text


def test_a_call_to_a_custom_tool_stays_json():
    """Without a built-in tool named, the template gets no builtin_tools: JSON calls ending on <|eot_id|>."""
    from engine.data.render import template_variables

    custom = [{**m, "tool_calls": [{**CALL, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
              if m.get("tool_calls") else m for m in ROW]
    assert template_variables(custom, LLAMA_3_1) == {}
    assert template_variables(ROW, LLAMA_3_1) == {"builtin_tools": ["brave_search"]}
    assert template_variables(ROW, families.by_key("llama3").template_text()) == {}  # 3.2's: no built-in tools


def test_an_imported_row_keeps_its_call_and_ipython_turn(tok, workspace, tmp_path):
    """The importer reads an ipython turn as a tool result and keeps the call: the saved row previews
    (the Dataset tab's preview) as the row itself does."""
    import json

    from engine.data.store import import_file, read_dataset

    source = tmp_path / "search.jsonl"
    source.write_text(json.dumps({"messages": ROW}) + "\n")
    import_file(workspace, "search", source)
    [saved] = read_dataset(workspace, "search")
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert preview(saved, tok).text == preview({"messages": ROW}, tok).text


def test_the_trained_call_ends_on_a_token_chat_stops_on(tok):
    model = family_model("llama", tok)
    encoded = encode({"messages": ROW}, tok)
    ids, masks = encoded["input_ids"], encoded["assistant_masks"]
    ends = [ids[i] for i in range(len(ids)) if masks[i] and (i + 1 == len(ids) or not masks[i + 1])]
    stops = stop_token_ids(tok, model.generation_config)
    assert ends == [tok.convert_tokens_to_ids("<|eom_id|>"), tok.convert_tokens_to_ids("<|eot_id|>")]
    assert set(ends) <= set(stops)


def test_the_ollama_template_writes_the_ipython_result_as_training_and_stops_on_eom(tok):
    """Ollama's API has no built-in tools, so the Modelfile's TEMPLATE (judged by Go) writes a built-in
    call as the JSON call it writes for any tool, and "Tools: brave_search" is not in its system turn;
    the result's ipython turn is written as training writes it, and <|eom_id|> is a stop."""
    from go_judge import go_render

    from engine.chat.templates import stop_strings
    from engine.export.modelfile import PROBE_TOOLS, go_template_for

    go = go_template_for(tok, LLAMA_3_1)
    chat = [{**m, "role": "tool", "name": "brave_search", "tool_call_id": "c1"} if m["role"] == "ipython" else m
            for m in ROW]
    ollama = go_render(go, chat, tools=PROBE_TOOLS)
    training = preview({"messages": chat}, tok).text
    result = '<|start_header_id|>ipython<|end_header_id|>\n\n"Sunny, a new bridge."<|eot_id|>'
    assert result in ollama and result in training
    assert '{"name": "brave_search", "parameters": {"query":"Paris news"}}<|eot_id|>' in ollama
    assert "<|python_tag|>" not in ollama and "Tools: brave_search" not in ollama
    assert "<|eom_id|>" in stop_strings(tok)  # the Modelfile's PARAMETER stop lines (engine.export.exporter)
