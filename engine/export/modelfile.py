"""Ollama Modelfiles: FROM the GGUF, a Go TEMPLATE that renders like the training template, the stop
tokens, PARAMETER lines from a sampling preset, and SYSTEM from a character card.

Ollama templates are Go templates, so a jinja chat template cannot be copied over. We keep Go
versions of common template families (ChatML, with or without a default system prompt, the
tutorial's Alpaca prompt, Llama 3, Llama 3.1 and 3.2, Gemma, Phi-3, Mistral's [INST] v3 and v7) and pick the one that renders the
training template's probe conversations byte for byte (the Go side rendered by gotemplate.py). A BOS
token the chat template writes first is left out of that comparison where the tokenizer adds it by
itself: llama.cpp then adds it too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine.export.gotemplate import render_go
from engine.export.source import ExportError
from engine.chat.sampling import Sampling

PROBES = (
    [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "U2"}],
)

CHATML = (
    "{{- range $i, $m := .Messages }}{DEFAULT}"
    "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
# Templates such as SmolLM2's and Qwen's put a system prompt of their own when the chat has none.
CHATML_DEFAULT_SYSTEM = "{{ if and (eq $i 0) (ne $m.Role \"system\") }}<|im_start|>system\n{text}<|im_end|>\n{{ end }}"

ALPACA = (
    "{{- range $i, $m := .Messages }}"
    "{{ if and (eq $i 0) (eq $m.Role \"system\") }}{{ $m.Content }}\n\n"
    "{{ else if eq $i 0 }}Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n{{ end }}"
    "{{ if eq $m.Role \"user\" }}### Instruction:\n{{ $m.Content }}\n\n"
    "{{ else if eq $m.Role \"assistant\" }}### Response:\n{{ $m.Content }}{EOS}\n\n{{ end }}"
    "{{ end }}### Response:\n"
)

LLAMA3 = (
    "{{- range $i, $m := .Messages }}<|start_header_id|>{{ $m.Role }}<|end_header_id|>\n\n{{ $m.Content }}<|eot_id|>"
    "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Llama 3.1 and 3.2 open every chat with a system turn that starts with a dated preamble ("Cutting
# Knowledge Date: ...", "Today Date: ..."); the chat's own system prompt, if it has one, follows it.
# Llama 3.2's template writes the day it renders, so the Modelfile keeps the day of the export.
LLAMA3_SYSTEM_HEADER = (
    "{{- range $i, $m := .Messages }}"
    "{{ if eq $i 0 }}<|start_header_id|>system<|end_header_id|>\n\n{PREAMBLE}"
    "{{ if eq $m.Role \"system\" }}{{ $m.Content }}{{ end }}<|eot_id|>{{ end }}"
    "{{ if or (ne $i 0) (ne $m.Role \"system\") }}"
    "<|start_header_id|>{{ $m.Role }}<|end_header_id|>\n\n{{ $m.Content }}<|eot_id|>{{ end }}"
    "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Gemma has no system role: the system prompt opens the first user turn.
GEMMA = (
    "{{- range $i, $m := .Messages }}"
    "{{ if eq $m.Role \"system\" }}<start_of_turn>user\n{{ $m.Content }}\n\n"
    "{{ else if and (eq $i 1) (eq $m.Role \"user\") }}{{ $m.Content }}<end_of_turn>\n"
    "{{ else if eq $m.Role \"user\" }}<start_of_turn>user\n{{ $m.Content }}<end_of_turn>\n"
    "{{ else }}<start_of_turn>model\n{{ $m.Content }}<end_of_turn>\n{{ end }}"
    "{{ end }}<start_of_turn>model\n"
)
# Mistral's [INST] formats, with the system prompt where each version puts it (as Ollama's own mistral
# templates do): v3 (Nemo's tekken, 7B v0.3) writes it into the LAST user turn, v7 (Small 3 and later)
# as a [SYSTEM_PROMPT] turn where it stands, some with a default one. {SPACE}: v3 before tekken writes
# "[INST] " and " " before a reply.
MISTRAL_V3 = (
    "{{- range $i, $m := .Messages }}"
    "{{ if eq $m.Role \"user\" }}[INST]{SPACE}"
    "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}{{ $m.Content }}[/INST]"
    "{{ else if eq $m.Role \"assistant\" }}{SPACE}{{ $m.Content }}{EOS}{{ end }}"
    "{{ end }}"
)
MISTRAL_V7 = (
    "{{- range $i, $m := .Messages }}{DEFAULT}"
    "{{ if eq $m.Role \"system\" }}[SYSTEM_PROMPT]{{ $m.Content }}[/SYSTEM_PROMPT]"
    "{{ else if eq $m.Role \"user\" }}[INST]{{ $m.Content }}[/INST]"
    "{{ else if eq $m.Role \"assistant\" }}{{ $m.Content }}{EOS}{{ end }}"
    "{{ end }}"
)
MISTRAL_DEFAULT_SYSTEM = "{{ if and (eq $i 0) (ne $m.Role \"system\") }}[SYSTEM_PROMPT]{text}[/SYSTEM_PROMPT]{{ end }}"
PHI3 = "{{- range $i, $m := .Messages }}<|{{ $m.Role }}|>\n{{ $m.Content }}<|end|>\n{{ end }}<|assistant|>\n"

MODELFILE_HEAD = "# Ollama Modelfile for the run"  # how this app's Modelfiles start (another's is never overwritten)

# Ollama's names for the sampling settings.
OLLAMA_PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                     "repetition_penalty": "repeat_penalty", "max_new_tokens": "num_predict"}


def render_jinja(tokenizer, template: str, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)


def ollama_data(messages: list[dict], system: str = "") -> dict:
    """What Ollama hands a template (its server/routes.go and template.collate): a Modelfile SYSTEM is put
    first as a system message when the chat has none; neighbours of one role are joined by a blank line;
    .System is every system message, joined."""
    if system and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    collated: list[dict] = []
    for m in messages:
        if collated and collated[-1]["Role"] == m["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"]})
    return {"Messages": collated, "System": "\n\n".join(m["content"] for m in messages if m["role"] == "system"),
            "Prompt": next((m["content"] for m in reversed(messages) if m["role"] == "user"), ""), "Response": ""}


def render_for_ollama(tokenizer, template: str, messages: list[dict]) -> str:
    """The jinja rendering as the GGUF's prompt text: without a leading BOS the tokenizer adds by itself."""
    text = render_jinja(tokenizer, template, messages)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return text[len(bos):]
    return text


def accepts(tokenizer, template: str, messages: list[dict]) -> bool:
    """Whether the chat template accepts this conversation (some raise on a system prompt)."""
    from jinja2 import TemplateError

    try:
        render_jinja(tokenizer, template, messages)
    except TemplateError:
        return False
    return True


def go_template_for(tokenizer, template: str) -> str:
    """The Go template that renders the probe conversations exactly like `template` (a plain jinja one)."""
    probes = [m for m in PROBES if accepts(tokenizer, template, m)]  # Gemma 2's template refuses a system prompt
    want = [render_for_ollama(tokenizer, template, m) for m in probes]
    candidates = []
    default = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n", want[0], re.S)
    candidates.append(CHATML.replace("{DEFAULT}", CHATML_DEFAULT_SYSTEM.replace("{text}", default.group(1)) if default else ""))
    candidates.append(ALPACA.replace("{EOS}", tokenizer.eos_token or ""))
    preamble = re.match(r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", want[0], re.S)
    if preamble:
        candidates.append(LLAMA3_SYSTEM_HEADER.replace("{PREAMBLE}", preamble.group(1)))
    candidates += [LLAMA3, GEMMA, PHI3]
    eos = tokenizer.eos_token or ""
    candidates += [MISTRAL_V3.replace("{SPACE}", space).replace("{EOS}", eos) for space in ("", " ")]
    default = re.match(r"\[SYSTEM_PROMPT\](.*?)\[/SYSTEM_PROMPT\]", want[0], re.S)
    candidates.append(MISTRAL_V7.replace("{EOS}", eos).replace(
        "{DEFAULT}", MISTRAL_DEFAULT_SYSTEM.replace("{text}", default.group(1)) if default else ""))
    for go in candidates:
        if all(render_go(go, ollama_data(m)) == w for m, w in zip(probes, want)):
            return go
    raise ExportError(
        "No Ollama template here renders exactly like this model's chat template (the known ones are ChatML, "
        "Alpaca, Llama 3, Llama 3.1/3.2, Gemma, Phi-3 and Mistral v3/v7), so no Modelfile was written. The GGUF file itself is complete and carries the chat template "
        "for llama.cpp; write the Modelfile's TEMPLATE by hand if you use Ollama.\nThe template starts: "
        + want[0][:200]
    )


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('The system prompt contains """, which a Modelfile cannot hold; remove it and export again.')
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, go_template: str, stops: list[str], sampling: Sampling, preset: str,
                   num_ctx: int, system: str = "", run: str = "") -> str:
    lines = [
        f"{MODELFILE_HEAD} '{run}', written by LoRA Workbench.",
        "# Use it from this folder: ollama create NAME -f Modelfile   then   ollama run NAME",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quote(go_template)}",
    ]
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    lines += [f"PARAMETER stop {json.dumps(s, ensure_ascii=False)}" for s in stops]
    lines.append(f"# Sampling preset: {preset}")
    values = sampling.model_dump()
    names = ("temperature",) if sampling.greedy else ("temperature", "top_p", "top_k", "min_p")
    for field in (*names, "repetition_penalty", "max_new_tokens"):
        lines.append(f"PARAMETER {OLLAMA_PARAMETERS[field]} {values[field]}")
    if sampling.seed is not None:
        lines.append(f"PARAMETER seed {sampling.seed}")
    lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"


def read_modelfile(path: Path) -> dict:
    """The FROM, TEMPLATE, SYSTEM and PARAMETER lines of a Modelfile written by `modelfile_text`."""
    text = Path(path).read_text(encoding="utf-8")
    out: dict = {"parameters": []}
    for key in ("TEMPLATE", "SYSTEM"):
        match = re.search(rf'^{key} """(.*?)"""', text, re.S | re.M)
        out[key.lower()] = match.group(1) if match else ""
    match = re.search(r"^FROM (.+)$", text, re.M)
    out["from"] = match.group(1).strip() if match else ""
    out["parameters"] = re.findall(r"^PARAMETER (\S+) (.+)$", text, re.M)
    return out
