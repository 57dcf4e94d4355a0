"""The Modelfile: a template with no Ollama equivalent refused, the app's own Go evaluator held to Go's
text/template, a Modelfile that renders differently caught in the export's report, and its lines.
(Every family's TEMPLATE is judged by Go in test_export_go_templates.py.)"""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from engine.export.gotemplate import GoTemplateError, render_go
from engine.chat.sampling import preset
from engine.chat.templates import prepare_tokenizer
from engine.export.modelfile import go_template_for, modelfile_text, ollama_data, read_modelfile
from engine.export.source import ExportError, plain_template
from engine.export.verify import compare_templates
from go_judge import go_render

@pytest.fixture(scope="module")
def tokenizer(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


def test_a_template_with_no_ollama_equivalent_is_refused_with_a_reason(tokenizer):
    vicuna = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ 'USER: ' + m['content'] + '\\n' }}"
              "{% else %}{{ 'ASSISTANT: ' + m['content'] + eos_token + '\\n' }}{% endif %}{% endfor %}ASSISTANT:")
    with pytest.raises(ExportError, match="No Ollama template here renders exactly like"):
        go_template_for(tokenizer, vicuna)


def test_the_apps_go_evaluator_renders_trimming_conditions_and_slices_as_go_does():
    """engine/export/gotemplate.py picks and checks the Modelfile at export time; Go's text/template is the judge."""
    chat = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    data = ollama_data(chat)
    template = ("  {{- range $i, $m := .Messages }}{{ if eq $i 0 }}[first]{{ else if eq $m.Role \"assistant\" }}"
                "[bot]{{ else }}[other]{{ end }}{{ $m.Content }} {{- end }}|{{ len .Messages }}|"
                "{{ or .System \"none\" }}|{{ and (ne $.System \"x\") \"y\" }}|{{ len (slice .Messages 1) }}"
                "{{ range $i, $_ := .Messages }}{{ if le (len (slice $.Messages $i)) 2 }}<{{ .Content }}>{{ end }}{{ end }}")
    assert render_go(template, data) == go_render(template, chat) == "[first]a[bot]b[other]c|3|none|y|2<b><c>"
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
