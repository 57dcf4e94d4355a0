"""Every family of engine/chat/families.yaml, on a tiny random model of its architecture with its real
chat template and special tokens (SmolLM2's vocabulary): training renders what chat renders, exactly
the assistant replies are trained (checked against trl's training templates where trl ships one),
the token a reply is trained to end with is one chat stops on, and tool calls use the template's
own syntax. A new row in families.yaml needs a case here (the first test says so)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import trl

from engine.chat import families
from engine.chat.templates import prepare_tokenizer, stop_token_ids
from engine.data.render import encode, preview
from tests.model_shapes import family_model, family_tokenizer

# family key -> (config model_type of the tiny model, its special tokens, what each reply is trained as)
CASES = {
    "mistral-v7": ("mistral", "mistral", ["A1.</s>", "A2.</s>"]),
    "mistral-nemo": ("mistral", "mistral", ["A1.</s>", "A2.</s>"]),
    # Qwen3's template writes a think block (empty here) only in the turn after the last question.
    "qwen3": ("qwen3", "qwen", ["A1.<|im_end|>", "<think>\n\n</think>\n\nA2.<|im_end|>"]),
    "qwen2.5": ("qwen2", "qwen", ["A1.<|im_end|>", "A2.<|im_end|>"]),
    "chatml": ("llama", "qwen", ["A1.<|im_end|>", "A2.<|im_end|>"]),
    "llama3": ("llama", "llama3", ["A1.<|eot_id|>", "A2.<|eot_id|>"]),
    "gemma2": ("gemma2", "gemma", ["A1.<end_of_turn>", "A2.<end_of_turn>"]),
    "gemma3": ("gemma3_text", "gemma", ["A1.<end_of_turn>", "A2.<end_of_turn>"]),
    "phi3": ("phi3", "phi3", ["A1.<|end|>", "A2.<|end|>"]),
}
CHAT = [{"role": "system", "content": "Talk like a pirate."}, {"role": "user", "content": "U1?"},
        {"role": "assistant", "content": "A1."}, {"role": "user", "content": "U2?"},
        {"role": "assistant", "content": "A2."}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}]
CALL = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
TOOL_CHAT = [{"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": "", "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "Sunny"},
             {"role": "assistant", "content": "It is sunny."}]
# How each template writes the call above, where it has a syntax for calls.
CALL_SYNTAX = {
    "mistral-v7": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call00001"}]</s>',
    "mistral-nemo": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call00001"}]</s>',
    "qwen3": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
    "qwen2.5": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
    "llama3": '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>',
}


def trl_training_copy(family) -> Path:
    return Path(trl.__file__).parent / "chat_templates" / f"{family.template.removeprefix('trl:')}_training.jinja"


TRL_MARKED = sorted(k for k in CASES if families.by_key(k).template.startswith("trl:")
                    and trl_training_copy(families.by_key(k)).exists())


def test_every_family_row_has_a_case_here():
    assert set(CASES) == {f.key for f in families.families()}


@pytest.fixture(scope="module", params=sorted(CASES))
def family(request, default_model_path):
    family = families.by_key(request.param)
    architecture, tokens, _ = CASES[family.key]
    tok = prepare_tokenizer(family_tokenizer(default_model_path, tokens, family.template_text()))
    return family, architecture, tok


def chat(family, messages):
    """What the family's own template renders for a chat (Gemma 2's has no system role: the app puts
    the system prompt at the head of the first user turn, as Gemma 3's own template does)."""
    if family.system == "none" and messages[0]["role"] == "system":
        messages = [{**messages[1], "content": messages[0]["content"] + "\n\n" + messages[1]["content"]},
                    *messages[2:]]
    return messages


def test_the_family_is_known_by_its_template_and_trains_with_it_unchanged(family):
    family, _, tok = family
    assert families.of_template(family.template_text()) == family
    assert tok.chat_template == family.template_text()


def test_training_renders_what_the_model_renders_for_chat(family):
    family, _, tok = family
    rendered = tok.apply_chat_template(chat(family, CHAT), chat_template=family.template_text(), tokenize=False)
    assert preview({"messages": CHAT}, tok).text == rendered
    assert encode({"messages": CHAT}, tok)["input_ids"] == tok(rendered, add_special_tokens=False)["input_ids"]
    # A chat prompt is the training text up to the reply: the reply is what the model then writes.
    prompt = tok.apply_chat_template(chat(family, CHAT[:4]), add_generation_prompt=True, tokenize=False)
    if family.system not in ("last_user",):  # Mistral v3 moves the system prompt to the last question
        assert rendered.startswith(prompt)


def test_exactly_each_assistant_reply_and_its_end_of_turn_are_trained(family):
    family, _, tok = family
    trained = [piece for piece, on in preview({"messages": CHAT}, tok).segments if on]
    assert trained == CASES[family.key][2]
    assert "Talk like a pirate." in preview({"messages": CHAT}, tok).text


@pytest.mark.parametrize("family", TRL_MARKED, indirect=True)
def test_the_masks_are_those_of_trls_training_template(family):
    """trl's copies also train the newline after the end of turn (and Phi-3's closing eos), text a
    reply never writes since chat stops at the end of turn; otherwise the masks agree. (For the families
    trl has no training copy of, the trained pieces above are the check.)"""
    family, _, tok = family
    marked = trl_training_copy(family)
    # trl's Qwen3 copy writes think blocks into every turn, unlike the model's own: one turn only there.
    for messages in (CHAT[1:3], CHAT) if family.key != "qwen3" else (CHAT[1:3],):
        theirs = tok.apply_chat_template(chat(family, messages), chat_template=marked.read_text(), tokenize=True,
                                         return_dict=True, return_assistant_tokens_mask=True)
        ours = encode({"messages": messages}, tok)
        assert ours["input_ids"] == list(theirs["input_ids"])
        only_theirs = [t for t, a, b in zip(ours["input_ids"], ours["assistant_masks"], theirs["assistant_masks"]) if a != b]
        assert all(b for a, b in zip(ours["assistant_masks"], theirs["assistant_masks"]) if a)
        assert {tok.decode([t]).strip() for t in only_theirs} <= {"", tok.eos_token}


def test_a_reply_is_trained_to_end_on_a_token_chat_stops_on(family):
    family, architecture, tok = family
    model = family_model(architecture, tok)
    encoded = encode({"messages": CHAT}, tok)
    ids, masks = encoded["input_ids"], encoded["assistant_masks"]
    ends = [ids[i] for i in range(len(ids)) if masks[i] and (i + 1 == len(ids) or not masks[i + 1])]
    assert len(ends) == 2 and set(ends) <= set(stop_token_ids(tok, model.generation_config))


def test_lora_adapts_the_familys_layers_and_the_masked_loss_trains(family):
    from peft import LoraConfig, get_peft_model

    family, architecture, tok = family
    modules = families.target_modules(architecture)
    model = get_peft_model(family_model(architecture, tok), LoraConfig(r=4, target_modules=modules))
    adapted = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name.endswith(tuple(modules))}
    assert adapted == set(modules)
    encoded = encode({"messages": CHAT}, tok)
    ids = torch.tensor([encoded["input_ids"]])
    labels = torch.tensor([[t if m else -100 for t, m in zip(encoded["input_ids"], encoded["assistant_masks"])]])
    loss = model(input_ids=ids, labels=labels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


@pytest.mark.parametrize("family", sorted(CALL_SYNTAX), indirect=True)
def test_tool_calls_render_through_the_templates_own_syntax(family):
    family, _, tok = family
    p = preview({"messages": TOOL_CHAT, "tools": TOOLS}, tok)
    assert p.text == tok.apply_chat_template(TOOL_CHAT, tools=TOOLS, tokenize=False)
    trained = [piece for piece, on in p.segments if on]
    assert trained[0].endswith(CALL_SYNTAX[family.key]) and trained[-1].startswith(("It is sunny.", "<think>"))
    assert "Sunny" not in "".join(trained)  # the tool's answer is read, not written, by the model
    # OpenAI's rows hold the arguments as a JSON string: they render as the object they are.
    openai = [{**m, "tool_calls": [{**CALL, "function": {**CALL["function"], "arguments": '{"city":"Paris"}'}}]}
              if m.get("tool_calls") else m for m in TOOL_CHAT]
    assert preview({"messages": openai, "tools": TOOLS}, tok).text == p.text


@pytest.mark.parametrize("family", sorted(set(CASES) - set(CALL_SYNTAX)), indirect=True)
def test_a_template_without_call_syntax_trains_the_call_written_into_the_reply(family):
    family, _, tok = family
    assert "tool_calls" not in family.template_text()
    p = preview({"messages": TOOL_CHAT, "tools": TOOLS}, tok)
    trained = [piece for piece, on in p.segments if on]
    assert trained[0].startswith('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert trained[-1].startswith("It is sunny.") and "Sunny" not in "".join(trained)
    if not family.tool_role:  # Gemma: the result is read in a user turn, as the template alternates turns
        assert "<start_of_turn>user\n<tool_response>\nSunny\n</tool_response><end_of_turn>" in p.text


def test_qwen3_thinking_rows_on_and_off(default_model_path):
    family = families.by_key("qwen3")
    tok = prepare_tokenizer(family_tokenizer(default_model_path, "qwen", family.template_text()))
    thought = [{"role": "user", "content": "U1?"}, {"role": "assistant", "content": "<think>\nR1\n</think>\n\nA1."},
               {"role": "user", "content": "U2?"}, {"role": "assistant", "content": "<think>\nR2\n</think>\n\nA2."}]
    p = preview({"messages": thought}, tok)
    assert p.text == tok.apply_chat_template(thought, tokenize=False)
    # As Qwen3's own template: reasoning of turns before the last question is left out of the text.
    assert [piece for piece, on in p.segments if on] == ["A1.<|im_end|>", "<think>\nR2\n</think>\n\nA2.<|im_end|>"]
    plain = preview({"messages": CHAT[1:3]}, tok).text
    off = tok.apply_chat_template(CHAT[1:2], add_generation_prompt=True, enable_thinking=False, tokenize=False)
    on = tok.apply_chat_template(CHAT[1:2], add_generation_prompt=True, tokenize=False)
    # Thinking off: the prompt carries the empty think block the row was trained with; on: the model writes it.
    assert off.endswith("<think>\n\n</think>\n\n") and plain == off + "A1.<|im_end|>\n"
    assert plain == on + "<think>\n\n</think>\n\nA1.<|im_end|>\n"


def test_where_the_system_prompt_goes(default_model_path):
    rendered = {}
    for key in ("mistral-nemo", "mistral-v7", "gemma2", "gemma3"):
        family = families.by_key(key)
        tok = prepare_tokenizer(family_tokenizer(default_model_path, CASES[key][1], family.template_text()))
        rendered[key] = preview({"messages": CHAT}, tok).text
    assert rendered["mistral-nemo"] == "<s>[INST]U1?[/INST]A1.</s>[INST]Talk like a pirate.\n\nU2?[/INST]A2.</s>"
    assert rendered["mistral-v7"] == ("<s>[SYSTEM_PROMPT]Talk like a pirate.[/SYSTEM_PROMPT][INST]U1?[/INST]A1.</s>"
                                      "[INST]U2?[/INST]A2.</s>")
    assert rendered["gemma2"] == rendered["gemma3"]
    assert rendered["gemma3"].startswith("<bos><start_of_turn>user\nTalk like a pirate.\n\nU1?<end_of_turn>")


def test_phi3_runs_adapt_its_fused_layers_by_default(workspace, default_model_path, tmp_path):
    """Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj, so the default layer list names
    layers it lacks: a run with the default list adapts the family's layers (families.yaml), the
    plan's memory estimate counts exactly those parameters, and a run's step trains them."""
    import json

    from engine.hardware import detect
    from engine.train import backend, plan, runs, worker
    from engine.train.config import validate, with_changes

    folder = tmp_path / "tiny-phi3"
    tok = family_tokenizer(default_model_path, "phi3", families.by_key("phi3").template_text())
    family_model("phi3", tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    data = workspace.datasets / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Question number {i}?"},
        {"role": "assistant", "content": f"Answer {i}, friend. Arr, matey!"}]}) + "\n" for i in range(4)))
    config = validate({"model": {"name_or_path": str(folder), "max_seq_length": 64}, "dataset": str(data),
                       "lora": {"r": 4, "dropout": 0.0}, "train": {"max_steps": 1, "batch_size": 2,
                                                                    "gradient_accumulation": 1},
                       "probes": {"prompts": []}})
    fused = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    assert config.lora.targets("phi3") == list(families.by_key("phi3").target_modules)
    assert set(config.lora.targets("phi3")) == fused

    settings = backend.resolve(config, detect())
    model, _ = backend.load(config, settings, folder)
    assert set(model.peft_config["default"].target_modules) == fused
    trainable, _ = model.get_nb_trainable_parameters()
    _, shape = plan.tokenizer_and_shape(config, workspace)
    optimizer_bytes = 2 if "8bit" in settings.optimizer else 8
    assert plan.estimate_memory(shape, config, settings, 0).adapter == trainable * (4 + 4 + optimizer_bytes)

    # A layer the person chose is kept as chosen, embeddings added to the default list too.
    with_embeddings = config.lora.model_copy(update={"target_modules": [*config.lora.target_modules, "lm_head"]})
    assert with_embeddings.targets("phi3") == [*families.by_key("phi3").target_modules, "lm_head"]
    assert config.lora.model_copy(update={"target_modules": ["o_proj"]}).targets("phi3") == ["o_proj"]
    # Layers Phi-3 lacks, chosen by name, are named in the plan before a run would fail on them.
    unfused = with_changes(config, {"lora.target_modules": ["q_proj", "v_proj", "o_proj"]})
    assert [p for p in plan.make(unfused, workspace).problems if "target_modules" in p] == [
        "lora.target_modules: this model has no layers named q_proj, v_proj; its layers are o_proj, qkv_proj, "
        "gate_up_proj, down_proj. Tick all seven for the model's own, or only layers it has."]
    assert not [p for p in plan.make(config, workspace).problems if "target_modules" in p]

    run = runs.create_run(workspace, config, name="phi3")
    assert worker.main(run.path, workspace) == 0  # the training worker, in this process
    run = runs.load_run(workspace, "phi3")
    assert run.state == "completed" and [e["step"] for e in run.events if e["type"] == "step"] == [1]
    adapter = json.loads((run.adapter / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == fused
