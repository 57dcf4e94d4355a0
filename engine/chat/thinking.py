"""Thinking models (Qwen3 and its kin): the chat template's thinking switch, and a reply split into the
thinking and the answer.

Such a model writes `<think>...</think>` before its answer. Its template says whether it has a switch by
reading an `enable_thinking` variable; off, the template writes an empty thinking block into the prompt
and the model answers straight away. The thinking is shown folded, apart from the answer, and only the
answer is compared, judged, or kept in the conversation's history."""

from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"


def has_switch(tokenizer) -> bool:
    """Whether the tokenizer's chat template (any of its named templates) reads `enable_thinking`."""
    template = getattr(tokenizer, "chat_template", None) or ""
    sources = template.values() if isinstance(template, dict) else [template]
    return any("enable_thinking" in source for source in sources)


@dataclass(frozen=True)
class Split:
    thinking: str  # "" when the reply holds none
    answer: str
    thinking_done: bool  # the thinking block is closed (False while a streamed one is still growing)


def split(text: str) -> Split:
    """`text` as (thinking, answer). The opening tag may be missing where the template's generation prompt
    already wrote it; an unclosed block is all thinking so far (a reply still streaming, or cut by a limit)."""
    head, closed, tail = text.partition(CLOSE)
    if closed:
        before, opened, inside = head.partition(OPEN)
        if opened and before.strip():  # a closing tag with text before its opening one: keep it all
            return Split("", text.strip(), True)
        return Split((inside if opened else before).strip(), tail.strip(), True)
    before, opened, inside = text.partition(OPEN)
    if opened and not before.strip():
        return Split(inside.strip(), "", False)
    return Split("", text.strip(), True)


def answer_of(text: str) -> str:
    """The reply without its thinking: what is compared, judged, and kept in the history."""
    return split(text).answer


class Switched:
    """The tokenizer with the thinking switch set for every chat-template call it renders; everything else
    is the tokenizer's own. Made for one request, so two requests never share a setting."""

    def __init__(self, tokenizer, on: bool):
        self._tokenizer, self._on = tokenizer, on

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)

    def apply_chat_template(self, *args, **kwargs):
        return self._tokenizer.apply_chat_template(*args, **{"enable_thinking": self._on, **kwargs})


def switched(tokenizer, on: bool | None):
    """The tokenizer to render with: with the switch set where its template has one and `on` is given, else
    the tokenizer itself."""
    return Switched(tokenizer, on) if on is not None and has_switch(tokenizer) else tokenizer
