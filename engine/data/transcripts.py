"""Conversations written out as one text: `Human:`/`Assistant:` transcripts (Anthropic's HH-RLHF),
and prompts that already hold a chat template (ChatML, Llama 2 `[INST]`, Alpaca `### Instruction:`,
`### Human:`), split back into their turns so the template is never trained as text."""

from __future__ import annotations

import re

# counted at a line's start or after ###; case-sensitive, as written in the wild (re.I is several times slower)
_SPEAKER = re.compile(r"(Human|Assistant|User|System|HUMAN|ASSISTANT|USER|SYSTEM)[ \t]*:[ \t]?")
_CHATML = re.compile(r"<\|im_start\|>[ \t]*(\w+)[ \t]*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S)
_INST = re.compile(r"\[INST\](.*?)\[/INST\]([^\[]*)", re.S)
_SYS = re.compile(r"<<SYS>>(.*?)<</SYS>>", re.S)
_ALPACA = re.compile(r"###[ \t]*(Instruction|Input|Response)[ \t]*:[ \t]*\n?", re.I)
_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "system": "system"}

TEMPLATES = {  # name -> (test on the prompt, what a person calls it)
    "chatml": (lambda p: "<|im_start|>" in p, "ChatML <|im_start|>"),
    "llama2": (lambda p: "[INST]" in p and "[/INST]" in p, "Llama 2 [INST]"),
    "alpaca": (lambda p: "### Instruction" in p and "### Response" in p, "Alpaca ### Instruction / ### Response"),
    "transcript": (lambda p: bool(re.search(r"(Human|User)[ \t]*:", p)) and bool(re.search(r"Assistant[ \t]*:\s*$", p)),
                   "Human: / Assistant:"),
}


def transcript(text: str) -> list[dict] | None:
    """`Human: ... Assistant: ...` text as messages; None when it holds no speaker labels."""
    labels = [m for m in _SPEAKER.finditer(text) if _starts_turn(text, m.start())]
    if not labels:
        return None
    head = text[:labels[0].start()].strip().removesuffix("###").strip()
    messages = [{"role": "system", "content": head}] if head else []
    for label, following in zip(labels, [*labels[1:], None]):
        said = text[label.end():following.start() if following else len(text)].strip()
        messages.append({"role": _ROLES[label.group(1).lower()], "content": said.removesuffix("###").strip()})
    return messages


def _starts_turn(text: str, at: int) -> bool:
    """A speaker label counts at the start of the text or of a line, or after `###`."""
    before = text[max(0, at - 16):at].rstrip(" \t")
    return before.endswith(("\n", "###")) or (not before and not text[:at].strip(" \t"))


def template_of(prompt: str) -> str | None:
    """The chat template a prompt already holds, by name, or None for a plain prompt."""
    return next((name for name, (test, _) in TEMPLATES.items() if test(prompt)), None)


def split_prompt(prompt: str, name: str) -> list[dict]:
    """A templated prompt as its turns, without the empty assistant cue it ends with."""
    if name == "chatml":
        messages = [{"role": _ROLES.get(r.lower(), r.lower()), "content": c.strip()} for r, c in _CHATML.findall(prompt)]
    elif name == "llama2":
        messages = []
        if system := _SYS.search(prompt):
            messages.append({"role": "system", "content": system.group(1).strip()})
        for asked, answered in _INST.findall(_SYS.sub("", prompt)):
            messages.append({"role": "user", "content": asked.replace("<s>", "").strip()})
            messages.append({"role": "assistant", "content": answered.replace("</s>", "").replace("<s>", "").strip()})
    elif name == "alpaca":
        pieces = _ALPACA.split(prompt)
        parts = {k.lower(): v.strip() for k, v in zip(pieces[1::2], pieces[2::2])}
        user = "\n\n".join(p for p in (parts.get("instruction", ""), parts.get("input", "")) if p)
        messages = [{"role": "user", "content": user}]
    else:
        messages = transcript(prompt) or [{"role": "user", "content": prompt.strip()}]
    while messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages
