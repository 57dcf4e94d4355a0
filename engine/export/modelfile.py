"""Ollama Modelfiles: FROM the GGUF, a Go TEMPLATE that renders like the training template, the stop
tokens, PARAMETER lines from a sampling preset, and SYSTEM from a character card.

Ollama templates are Go templates, so a jinja chat template cannot be copied over. We keep Go
versions of common template families (ChatML, with or without a default system prompt, the
tutorial's Alpaca prompt, Llama 3, Llama 3.1 and 3.2, Gemma, Phi-3, Mistral's [INST] v3 and v7) and pick the one that renders the
training template's probe conversations byte for byte (the Go side rendered by gotemplate.py). A BOS
token the chat template writes first is left out of that comparison where the tokenizer adds it by
itself: llama.cpp then adds it too. Where the chat template has a syntax for tool calls, a version that also
renders Ollama's tools, tool calls and results (Qwen, Llama 3.1/3.2, Mistral) is chosen if it renders the
tool-call probes the same way, but for the JSON Ollama writes itself (`alike`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from engine.export.gotemplate import render_go
from engine.export.source import ExportError
from engine.chat.sampling import Sampling
from engine.i18n import msg

PROBES = (
    [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "U2"}],
)
# A tool-call round (a call, its result; two calls, their results) for templates with a syntax for calls.
PROBE_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def _probe_call(city: str, id: str) -> dict:
    return {"id": id, "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}


TOOL_PROBES = (
    [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "", "tool_calls": [_probe_call("P", "call00001")]},
     {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "T1"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
     {"role": "assistant", "content": "", "tool_calls": [_probe_call("P", "call00001"), _probe_call("R", "call00002")]},
     {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "T1"},
     {"role": "tool", "tool_call_id": "call00002", "name": "get_weather", "content": "T2"},
     {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}],
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

# Tool calls, as Ollama hands them to a template: .Tools (each prints as its JSON), an assistant message's
# .ToolCalls (.ID, .Function.Name, .Function.Arguments printing as JSON) and "tool" messages (.ToolCallID).
# Qwen2.5 and Qwen3 (ChatML): the tools in the system turn, calls in <tool_call>, the results of one
# round in one user turn of <tool_response>s.
QWEN_TOOLS = (
    "{{- $prev := \"\" }}{{ range $i, $m := .Messages }}"
    "{{ if and (eq $prev \"tool\") (ne $m.Role \"tool\") }}<|im_end|>\n{{ end }}"
    "{{ if and (eq $i 0) $.Tools }}<|im_start|>system\n"
    "{{ if eq $m.Role \"system\" }}{{ $m.Content }}\n\n{{ else }}{DEFAULT_PARAGRAPH}{{ end }}"
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{{ range $.Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}{{ end }}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
    "{{ end }}{DEFAULT}"
    "{{ if and (eq $i 0) (eq $m.Role \"system\") }}"
    "{{ if not $.Tools }}<|im_start|>system\n{{ $m.Content }}<|im_end|>\n{{ end }}"
    "{{ else if eq $m.Role \"tool\" }}"
    "{{ if ne $prev \"tool\" }}<|im_start|>user{{ end }}\n<tool_response>\n{{ $m.Content }}\n</tool_response>"
    "{{ else if $m.ToolCalls }}<|im_start|>assistant{{ if $m.Content }}\n{{ $m.Content }}{{ end }}"
    "{{ range $m.ToolCalls }}\n<tool_call>\n{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}"
    "\n</tool_call>{{ end }}<|im_end|>\n"
    "{{ else }}<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ end }}"
    "{{ $prev = $m.Role }}{{ end }}{{ if eq $prev \"tool\" }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
QWEN_DEFAULT_SYSTEM = ("{{ if and (eq $i 0) (ne $m.Role \"system\") (not $.Tools) }}<|im_start|>system\n{text}<|im_end|>\n"
                       "{{ end }}")
# Llama 3.1 and 3.2: "Environment: ipython" opens the dated system turn, the tools (as JSON) open the first
# question, a call is {"name", "parameters"}, a result an ipython turn holding it as a JSON string.
LLAMA3_TOOLS = (
    "{{- $first := 0 }}{{ range $i, $m := .Messages }}{{ if and (eq $i 0) (eq $m.Role \"system\") }}{{ $first = 1 }}"
    "{{ end }}{{ end }}{{ range $i, $m := .Messages }}"
    "{{ if eq $i 0 }}<|start_header_id|>system<|end_header_id|>\n\n{{ if $.Tools }}Environment: ipython\n{{ end }}{PREAMBLE}"
    "{{ if eq $m.Role \"system\" }}{{ $m.Content }}{{ end }}<|eot_id|>{{ end }}"
    "{{ if and $.Tools (eq $i $first) }}<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please "
    "respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not "
    "use variables.\n\n{{ range $.Tools }}{{ . }}\n\n{{ end }}{{ $m.Content }}<|eot_id|>"
    "{{ else if or (ne $i 0) (ne $m.Role \"system\") }}"
    "{{ if $m.ToolCalls }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ range $m.ToolCalls }}{\"name\": "
    "\"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}<|eot_id|>"
    "{{ else if eq $m.Role \"tool\" }}<|start_header_id|>ipython<|end_header_id|>\n\n{{ json $m.Content }}<|eot_id|>"
    "{{ else }}<|start_header_id|>{{ $m.Role }}<|end_header_id|>\n\n{{ $m.Content }}<|eot_id|>{{ end }}"
    "{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Mistral: the tools just before the last question, calls with their ids in [TOOL_CALLS], each result in
# [TOOL_RESULTS] (v3 as JSON with its call_id, v7 as the id and [TOOL_CONTENT]).
MISTRAL_LAST_USER = ("{{- $last := -1 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role \"user\" }}{{ $last = $i }}"
                     "{{ end }}{{ end }}")
MISTRAL_TOOLS = "{{ if and $.Tools (eq $i $last) }}[AVAILABLE_TOOLS]{{ $.Tools }}[/AVAILABLE_TOOLS]{{ end }}"
MISTRAL_CALLS = ("[TOOL_CALLS][{{ range $j, $c := $m.ToolCalls }}{{ if $j }}, {{ end }}{\"name\": \"{{ $c.Function.Name }}\", "
                 "\"arguments\": {{ $c.Function.Arguments }}, \"id\": \"{{ $c.ID }}\"}{{ end }}]")
MISTRAL_V3_TOOLS = (
    MISTRAL_LAST_USER + "{{ range $i, $m := .Messages }}"
    "{{ if eq $m.Role \"user\" }}" + MISTRAL_TOOLS +
    "[INST]{SPACE}{{ if and $.System (eq $i $last) }}{{ $.System }}\n\n{{ end }}{{ $m.Content }}[/INST]"
    "{{ else if eq $m.Role \"assistant\" }}{{ if $m.ToolCalls }}" + MISTRAL_CALLS +
    "{{ else }}{SPACE}{{ $m.Content }}{{ end }}{EOS}"
    "{{ else if eq $m.Role \"tool\" }}[TOOL_RESULTS]{\"content\": {{ json $m.Content }}, \"call_id\": \"{{ $m.ToolCallID }}\"}"
    "[/TOOL_RESULTS]{{ end }}{{ end }}"
)
MISTRAL_V7_TOOLS = (
    MISTRAL_LAST_USER + "{{ range $i, $m := .Messages }}{DEFAULT}"
    "{{ if eq $m.Role \"system\" }}[SYSTEM_PROMPT]{{ $m.Content }}[/SYSTEM_PROMPT]"
    "{{ else if eq $m.Role \"user\" }}" + MISTRAL_TOOLS + "[INST]{{ $m.Content }}[/INST]"
    "{{ else if eq $m.Role \"assistant\" }}{{ if $m.ToolCalls }}" + MISTRAL_CALLS + "{{ else }}{{ $m.Content }}{{ end }}{EOS}"
    "{{ else if eq $m.Role \"tool\" }}[TOOL_RESULTS]{{ $m.ToolCallID }}[TOOL_CONTENT]{{ $m.Content }}[/TOOL_RESULTS]"
    "{{ end }}{{ end }}"
)

MODELFILE_HEAD = "# Ollama Modelfile for the run"  # how this app's Modelfiles start (another's is never overwritten)

# Ollama's names for the sampling settings.
OLLAMA_PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                     "repetition_penalty": "repeat_penalty", "max_new_tokens": "num_predict"}


def render_jinja(tokenizer, template: str, messages: list[dict], tools: list | None = None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, chat_template=template, tokenize=False,
                                         add_generation_prompt=True)


def ollama_data(messages: list[dict], system: str = "", tools: list | None = None) -> dict:
    """What Ollama hands a template (its server/routes.go and template.collate): a Modelfile SYSTEM is put
    first as a system message when the chat has none; neighbours of one role are joined by a blank line;
    .System is every system message, joined; the tools and tool calls in the shape of Ollama's api types."""
    if system and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    collated: list[dict] = []
    for m in messages:
        if collated and collated[-1]["Role"] == m["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + m["content"]
        else:
            collated.append({"Role": m["role"], "Content": m["content"] or "", "ToolName": m.get("name", ""),
                             "ToolCallID": m.get("tool_call_id", ""),
                             "ToolCalls": [_ollama_call(c) for c in m.get("tool_calls") or []]})
    return {"Messages": collated, "System": "\n\n".join(m["content"] for m in messages if m["role"] == "system"),
            "Prompt": next((m["content"] for m in reversed(messages) if m["role"] == "user"), ""), "Response": "",
            "Tools": [_ollama_tool(t) for t in tools or []]}


def _ollama_call(call: dict) -> dict:
    function = call.get("function", call)
    arguments = function.get("arguments") or {}
    return {"ID": call.get("id", ""), "Function": {"Index": function.get("index", 0), "Name": function.get("name", ""),
                                                  "Arguments": json.loads(arguments) if isinstance(arguments, str) else arguments}}


def _ollama_tool(tool: dict) -> dict:
    """A tool definition with the fields of Ollama's api.Tool, in their order (how it prints as JSON)."""
    function = tool.get("function", {})
    p = function.get("parameters") or {}
    parameters = {"type": p.get("type", ""), **{k: p[k] for k in ("$defs", "items", "required") if p.get(k)},
                  "properties": p.get("properties")}
    described = {"description": function["description"]} if function.get("description") else {}
    return {"type": tool.get("type", ""), **({"items": tool["items"]} if tool.get("items") else {}),
            "function": {"name": function.get("name", ""), **described, "parameters": parameters}}


def alike(got: str, want: str) -> bool:
    """Equal texts but for how their JSON objects and lists are written: Ollama prints tools and tool-call
    arguments itself, compact and in its own key order, where a jinja template's tojson spaces them."""
    return _json_written_one_way(got) == _json_written_one_way(want)


def _json_written_one_way(text: str) -> str:
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                pass
            else:
                out.append(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
                i = end
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def render_for_ollama(tokenizer, template: str, messages: list[dict], tools: list | None = None) -> str:
    """The jinja rendering as the GGUF's prompt text: without a leading BOS the tokenizer adds by itself."""
    text = render_jinja(tokenizer, template, messages, tools)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return text[len(bos):]
    return text


def accepts(tokenizer, template: str, messages: list[dict], tools: list | None = None) -> bool:
    """Whether the chat template accepts this conversation (some raise on a system prompt)."""
    from jinja2 import TemplateError

    try:
        render_jinja(tokenizer, template, messages, tools)
    except TemplateError:
        return False
    return True


def go_template_for(tokenizer, template: str) -> str:
    """The Go template that renders the probe conversations exactly like `template` (a plain jinja one)."""
    probes = [m for m in PROBES if accepts(tokenizer, template, m)]  # Gemma 2's template refuses a system prompt
    want = [render_for_ollama(tokenizer, template, m) for m in probes]
    # A template with a syntax for tool calls gets a Go template that writes them the same way where there
    # is one here; the JSON Ollama writes itself (the tools, the arguments) is compact (`alike`).
    tool_probes = [m for m in TOOL_PROBES if accepts(tokenizer, template, m, PROBE_TOOLS)] \
        if "tool_calls" in template else []
    tool_want = [render_for_ollama(tokenizer, template, m, PROBE_TOOLS) for m in tool_probes]
    go = _known_template(tokenizer, probes, want, tool_probes, tool_want)
    # A BOS the template writes and the tokenizer does not add itself stays in the prompt text (the GGUF then
    # adds none either), so the TEMPLATE writes it too, and Ollama reads it back as the special token.
    bos = tokenizer.bos_token or ""
    if go is None and bos and all(w.startswith(bos) for w in want + tool_want):
        go = _known_template(tokenizer, probes, [w[len(bos):] for w in want], tool_probes,
                             [w[len(bos):] for w in tool_want])
        go = bos + go if go is not None else None
    if go is not None:
        return go
    raise ExportError(msg(
        "No Ollama template here renders exactly like this model's chat template (the known ones are ChatML, "
        "Alpaca, Llama 3, Llama 3.1/3.2, Gemma, Phi-3 and Mistral v3/v7), so no Modelfile was written. The GGUF file "
        "itself is complete and carries the chat template for llama.cpp; write the Modelfile's TEMPLATE by hand if "
        "you use Ollama.\nThe template starts: {start}", start=want[0][:200]))


def _known_template(tokenizer, probes, want, tool_probes, tool_want) -> str | None:
    """The first of the known Go templates whose Ollama rendering of each probe is the wanted text."""
    tool_candidates = []
    default = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n", want[0], re.S)
    if tool_probes:
        tool_candidates.append(QWEN_TOOLS.replace("{DEFAULT_PARAGRAPH}", default.group(1) + "\n\n" if default else "")
                               .replace("{DEFAULT}", QWEN_DEFAULT_SYSTEM.replace("{text}", default.group(1)) if default else ""))
    candidates = []
    candidates.append(CHATML.replace("{DEFAULT}", CHATML_DEFAULT_SYSTEM.replace("{text}", default.group(1)) if default else ""))
    candidates.append(ALPACA.replace("{EOS}", tokenizer.eos_token or ""))
    preamble = re.match(r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", want[0], re.S)
    if preamble:
        candidates.append(LLAMA3_SYSTEM_HEADER.replace("{PREAMBLE}", preamble.group(1)))
        if tool_probes:
            tool_candidates.append(LLAMA3_TOOLS.replace("{PREAMBLE}", preamble.group(1)))
    candidates += [LLAMA3, GEMMA, PHI3]
    eos = tokenizer.eos_token or ""
    candidates += [MISTRAL_V3.replace("{SPACE}", space).replace("{EOS}", eos) for space in ("", " ")]
    default = re.match(r"\[SYSTEM_PROMPT\](.*?)\[/SYSTEM_PROMPT\]", want[0], re.S)
    v7_default = MISTRAL_DEFAULT_SYSTEM.replace("{text}", default.group(1)) if default else ""
    candidates.append(MISTRAL_V7.replace("{EOS}", eos).replace("{DEFAULT}", v7_default))
    if tool_probes:
        tool_candidates += [MISTRAL_V3_TOOLS.replace("{SPACE}", space).replace("{EOS}", eos) for space in ("", " ")]
        tool_candidates.append(MISTRAL_V7_TOOLS.replace("{EOS}", eos).replace("{DEFAULT}", v7_default))
    for go in tool_candidates:
        if all(render_go(go, ollama_data(m)) == w for m, w in zip(probes, want)) and all(
                alike(render_go(go, ollama_data(m, tools=PROBE_TOOLS)), w) for m, w in zip(tool_probes, tool_want)):
            return go
    for go in candidates:
        if all(render_go(go, ollama_data(m)) == w for m, w in zip(probes, want)):
            return go
    return None


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError(msg('The system prompt contains """, which a Modelfile cannot hold; remove it and export again.'))
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
