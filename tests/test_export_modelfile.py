"""The Modelfile's Go template: chosen to render like the training template, rendered here the way
Ollama renders it, and a difference shown when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from engine.export.gotemplate import GoTemplateError, render_go
from engine.export.modelfile import go_template_for, modelfile_text, ollama_data, read_modelfile, render_jinja
from engine.export.source import ExportError, plain_template
from engine.export.verify import compare_templates
from engine.chat.sampling import preset
from engine.chat.templates import prepare_tokenizer

CHATS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}],
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.mark.parametrize("choice", ["model", "chatml", "alpaca"])
def test_the_go_template_renders_every_chat_like_the_training_template(tokenizer, choice):
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tokenizer.name_or_path), template_choice=choice)
    template = plain_template(tok.chat_template)
    go = go_template_for(tok, template)
    for chat in CHATS:
        assert render_go(go, ollama_data(chat)) == render_jinja(tok, template, chat)
    if choice == "model":  # SmolLM2's own system prompt, used when a chat has none
        assert "You are a helpful AI assistant named SmolLM" in go


def bos_adding_tokenizer(bos: str):
    """A word-level tokenizer that puts `bos` first by itself, as Llama 3's and Gemma's do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = [bos, "<eos>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "x"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<eos>")


@pytest.mark.parametrize("family, bos", [("llama3", "<|begin_of_text|>"), ("llama3_1", "<|begin_of_text|>"),
                                         ("llama3_2", "<|begin_of_text|>"), ("gemma3", "<bos>"), ("phi3", "<s>")])
def test_llama3_gemma_and_phi3_templates_get_a_modelfile(family, bos):
    """trl's copies of the models' own chat templates; the BOS they write first is llama.cpp's to add."""
    import trl

    template = (Path(trl.__file__).parent / "chat_templates" / f"{family}.jinja").read_text()
    tok = bos_adding_tokenizer(bos)
    go = go_template_for(tok, template)
    # Llama 3's families also keep a system turn that does not come first (Gemma's Go template does not).
    late_system = [CHATS[1][1:] + CHATS[1][:1]] if family.startswith("llama3") else []
    for chat in CHATS + late_system:
        assert render_go(go, ollama_data(chat)) == render_jinja(tok, template, chat).removeprefix(bos)
    assert render_jinja(tok, template, CHATS[0]).startswith(bos) == (family != "phi3")
    if family.startswith("llama3_"):  # the dated preamble, with the day this renders on for Llama 3.2
        assert "Cutting Knowledge Date: December 2023" in go


def test_a_template_with_no_ollama_equivalent_is_refused_with_a_reason(tokenizer):
    mistral = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
               "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
    with pytest.raises(ExportError, match="No Ollama template here renders exactly like"):
        go_template_for(tokenizer, mistral)


def test_go_rendering_covers_trimming_conditions_and_errors():
    data = {"Messages": [{"Role": "user", "Content": "a"}, {"Role": "assistant", "Content": "b"}], "System": ""}
    template = ("  {{- range $i, $m := .Messages }}{{ if eq $i 0 }}[first]{{ else if eq $m.Role \"assistant\" }}"
                "[bot]{{ else }}[other]{{ end }}{{ $m.Content }} {{- end }}|{{ len .Messages }}|"
                "{{ or .System \"none\" }}|{{ not .System }}|{{ and (ne $.System \"x\") \"y\" }}")
    assert render_go(template, data) == "[first]a[bot]b|2|none|True|y"
    with pytest.raises(GoTemplateError, match="not closed"):
        render_go("{{ if .System }}x", data)
    with pytest.raises(GoTemplateError, match="without an opening"):
        render_go("x{{ end }}", data)
    with pytest.raises(GoTemplateError, match="No field"):
        render_go("{{ .Nope }}", data)


def test_a_modelfile_that_renders_differently_is_caught_and_shown(tokenizer, tmp_path):
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(tokenizer.name_or_path))
    good = go_template_for(tok, plain_template(tok.chat_template))
    stops = ["<|im_end|>"]
    (tmp_path / "Modelfile").write_text(modelfile_text("m.gguf", good, stops, preset("Leaderboard"), "Leaderboard", 2048))
    assert all(t.same for t in compare_templates(tok, None, tmp_path / "Modelfile"))
    broken = good.replace("<|im_end|>\n{{ end }}", "\n{{ end }}")  # forgets to end each turn
    (tmp_path / "Modelfile").write_text(modelfile_text("m.gguf", broken, stops, preset("Leaderboard"), "Leaderboard", 2048))
    renders = compare_templates(tok, None, tmp_path / "Modelfile")
    assert not renders[1].same and "-Hello! Who are you?<|im_end|>" in renders[1].diff
    assert read_modelfile(tmp_path / "Modelfile")["template"] == broken


def test_modelfile_lines(tmp_path):
    text = modelfile_text("run-q8_0.gguf", "{{ .Prompt }}", ["<|im_end|>"], preset("Roleplay chat"), "Roleplay chat",
                          1024, system="You are Ann.", run="run")
    (tmp_path / "Modelfile").write_text(text)
    parsed = read_modelfile(tmp_path / "Modelfile")
    assert parsed["from"] == "./run-q8_0.gguf" and parsed["system"] == "You are Ann."
    assert dict(parsed["parameters"]) == {"stop": '"<|im_end|>"', "temperature": "0.95", "top_p": "0.85",
                                          "top_k": "20", "min_p": "0.0", "repeat_penalty": "1.2",
                                          "num_predict": "1024", "num_ctx": "1024"}
    with pytest.raises(ExportError, match='contains """'):
        modelfile_text("m.gguf", "x", [], preset("Precise"), "Precise", 512, system='say """hi"""')
