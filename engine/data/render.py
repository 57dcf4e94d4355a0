"""Rendering a row exactly as training will see it, and marking the tokens that are trained.

`encode` is the one rendering: the preview, the statistics and training (through `store.encode_rows`)
all call it (text rows: the text plus EOS, every token trained). A template of a known family renders
the row as chat will, and the tokens of its assistant replies are trained (`templates.reply_spans`);
any other template makes the `apply_chat_template(..., return_assistant_tokens_mask=True)` call trl's
SFTTrainer makes for `messages` rows. The tokenizer comes from `load_tokenizer`, which gives it the
training template of `engine.chat.templates` (the model's own, or ChatML / Alpaca where it has none).
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from functools import lru_cache

from engine.chat import families


def load_tokenizer(model_path, template: str = "model", fallback: str = "chatml"):
    """The model's tokenizer with its training chat template and eos/pad set."""
    from engine.chat import templates

    return templates.load_tokenizer(model_path, template, fallback)


@lru_cache(maxsize=4)
def shared_tokenizer(model_path: str, template: str = "model", fallback: str = "chatml"):
    """`load_tokenizer`, kept for the next call (the app previews many times with one model): don't modify it."""
    return load_tokenizer(model_path, template, fallback)


@lru_cache(maxsize=8)
def has_own_template(model_path: str) -> bool:
    """Whether the model ships a chat template (else the person picks ChatML or Alpaca)."""
    from engine.chat import templates

    return bool(templates.load_tokenizer(model_path, None).chat_template)


def fit_to_template(messages: list[dict], tools, template: str) -> tuple[list[dict], list | None]:
    """Keep tool calls and tool definitions visible to a template that has no place for them: calls
    become text in the reply, results text in a user turn, definitions a paragraph of the system turn."""
    tools = json.loads(tools) if isinstance(tools, str) else tools
    family = families.of_template(template)
    messages = [_object_arguments(m) if m.get("tool_calls") else m for m in messages]
    if family and family.tool_call_id_length and any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        messages = with_call_ids(messages, family.tool_call_id_length)
    if "tool_calls" not in template and any(m.get("tool_calls") for m in messages):
        messages = [_call_as_text(m) if m.get("tool_calls") else m for m in messages]
    if family and not family.tool_role and any(m["role"] == "tool" for m in messages):
        messages = _results_as_user_text(messages)
    if tools and "tools" not in template:
        described = "You can call these tools:\n" + json.dumps(tools, ensure_ascii=False)
        if messages and messages[0]["role"] == "system":
            messages = [{**messages[0], "content": messages[0]["content"] + "\n\n" + described}, *messages[1:]]
        else:
            messages = [{"role": "system", "content": described}, *messages]
        tools = None
    if family and family.system == "none" and len(messages) > 1 and messages[0]["role"] == "system":
        # Gemma 2 has no system role; Gemma 3's template does this itself.
        first = messages[1]
        messages = [{**first, "content": messages[0]["content"] + "\n\n" + first["content"]}, *messages[2:]]
    return messages, tools


def _object_arguments(message: dict) -> dict:
    """OpenAI's tool calls hold their arguments as a JSON string; chat templates write an object's JSON
    (transformers' convention, and mistral-common's encoding) but a string as a quoted string, which is
    not what the model writes. A string that holds a JSON object becomes that object."""
    calls = []
    for call in message["tool_calls"]:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                call = {**call, "function": {**function, "arguments": parsed}}
        calls.append(call)
    return {**message, "tool_calls": calls}


def with_call_ids(messages: list[dict], length: int) -> list[dict]:
    """The conversation with each tool call's id, and its result's, made `length` letters and digits
    (Mistral's templates and mistral-common take 9): an id that is one already is kept, any other
    gives the same new one wherever it appears, so a result still names its call; a call without an
    id gets one from its place, and a result without one answers the next call not yet answered."""
    out, made, waiting = [], {}, []
    for i, m in enumerate(messages):
        if m.get("tool_calls"):
            calls = []
            for j, call in enumerate(m["tool_calls"]):
                original = str(call.get("id") or f"call {i}.{j}")
                made[original] = call_id(original, length)
                calls.append({**call, "id": made[original]})
            waiting = [c["id"] for c in calls]
            m = {**m, "tool_calls": calls}
        elif m["role"] == "tool":
            if m.get("tool_call_id"):
                original = str(m["tool_call_id"])
                new = made.get(original) or call_id(original, length)
            else:
                new = waiting[0] if waiting else call_id(f"result {i}", length)
            waiting = [w for w in waiting if w != new]
            m = {**m, "tool_call_id": new}
        out.append(m)
    return out


ID_CHARACTERS = string.ascii_letters + string.digits


def call_id(original: str, length: int) -> str:
    """`original` where it is `length` letters and digits already, else as many drawn from its hash."""
    if len(original) == length and original.isascii() and original.isalnum():
        return original
    n = int.from_bytes(hashlib.sha256(original.encode("utf-8")).digest(), "big")
    chars = []
    for _ in range(length):
        n, r = divmod(n, len(ID_CHARACTERS))
        chars.append(ID_CHARACTERS[r])
    return "".join(chars)


BUILTIN_TOOLS = ("brave_search", "wolfram_alpha", "code_interpreter")  # Llama 3.1's built-in tools


def template_variables(messages: list[dict], template: str) -> dict:
    """`builtin_tools` for a template that takes it (Llama 3.1's): the built-in tools the row's calls
    name. The template then opens the system turn with "Environment: ipython" and the tools, writes those
    calls as `<|python_tag|>brave_search.call(query="...")`, and ends every call on `<|eom_id|>`. Left
    undefined otherwise: the template tests only whether it is defined."""
    named = {(c.get("function") or {}).get("name") for m in messages for c in m.get("tool_calls") or []}
    used = [name for name in BUILTIN_TOOLS if name in named]
    return {"builtin_tools": used} if used and "builtin_tools" in (template or "") else {}


def _call_as_text(message: dict) -> dict:
    calls = "\n".join(
        "<tool_call>\n" + json.dumps(c.get("function", c), ensure_ascii=False) + "\n</tool_call>" for c in message["tool_calls"]
    )
    content = f"{message['content']}\n{calls}".strip()
    return {k: v for k, v in {**message, "content": content}.items() if k != "tool_calls"}


def _results_as_user_text(messages: list[dict]) -> list[dict]:
    """Each tool result as `<tool_response>` text in a user turn, merged with the user turns beside it
    (templates like Gemma's refuse two user turns in a row)."""
    out = []
    for m in messages:
        if m["role"] == "tool":
            m = {"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"}
        if out and m["role"] == "user" == out[-1]["role"]:
            previous = out.pop()
            m = {**previous, "content": previous["content"] + "\n" + m["content"]}
        out.append(m)
    return out


def encode(row: dict, tokenizer) -> dict:
    """{"input_ids", "assistant_masks"} of one row, as training computes them."""
    from trl.chat_template_utils import has_generation_markers

    if "text" in row:
        text = row["text"] if row["text"].endswith(tokenizer.eos_token) else row["text"] + tokenizer.eos_token
        ids = list(tokenizer(text=text)["input_ids"])
        return {"input_ids": ids, "assistant_masks": [1] * len(ids)}
    messages, tools = fit_to_template(row["messages"], row.get("tools"), tokenizer.chat_template)
    variables = template_variables(messages, tokenizer.chat_template)
    family = families.of_template(tokenizer.chat_template)
    if family and not has_generation_markers(tokenizer.chat_template):
        return _encode_family(messages, tools, tokenizer, family, variables)
    out = tokenizer.apply_chat_template(
        messages, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, **variables
    )
    return {"input_ids": list(out["input_ids"]), "assistant_masks": list(out["assistant_masks"])}


def _encode_family(messages, tools, tokenizer, family, variables: dict) -> dict:
    from engine.chat.templates import reply_spans

    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **variables)
    out = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = reply_spans(text, family)
    masks = [int(any(a < end and b > start for start, end in spans)) for a, b in out["offset_mapping"]]
    return {"input_ids": list(out["input_ids"]), "assistant_masks": masks}


@dataclass
class Preview:
    segments: list[tuple[str, bool]]  # consecutive pieces of the rendered text, and whether each is trained
    tokens: int
    trained: int
    ends_with_eos: bool  # the last trained token is EOS: the model learns to stop
    max_seq_length: int | None

    @property
    def text(self) -> str:
        return "".join(piece for piece, _ in self.segments)

    @property
    def truncated(self) -> bool:
        return self.max_seq_length is not None and self.tokens > self.max_seq_length


def preview(row: dict, tokenizer, max_seq_length: int | None = None) -> Preview:
    encoded = encode(row, tokenizer)
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    segments: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or bool(mask[i]) != bool(mask[start]):
            segments.append((tokenizer.decode(ids[start:i]), bool(mask[start])))
            start = i
    trained = [t for t, m in zip(ids, mask) if m]
    return Preview(segments, len(ids), len(trained), bool(trained) and trained[-1] == tokenizer.eos_token_id, max_seq_length)
