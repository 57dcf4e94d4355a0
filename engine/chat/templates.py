"""Chat templates: the one rendering shared by the data preview, training and chat.

A model of a known family (engine/chat/families.yaml) trains and chats with its own template,
unchanged, so what trains is what it runs; the trained tokens of a row are found from the family's
reply markers (`reply_spans`). Any other template needs `{% generation %}` markers around each
assistant reply (trl reads them through `return_assistant_tokens_mask`; trl ships marked copies of
many templates). A model with no template gets a fallback the person picks: ChatML (default) or the
tutorial's Alpaca prompt.
"""

from __future__ import annotations

import re

from trl.chat_template_utils import get_training_chat_template, has_generation_markers

from engine.chat import families
from engine.i18n import msg

FALLBACKS = ("chatml", "alpaca")

CHATML = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The tutorial's Alpaca prompt; a system turn replaces the standard preamble, later turns repeat the pair.
ALPACA = (
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}"
    "{% else %}{{ 'Below is an instruction that describes a task. '"
    " 'Write a response that appropriately completes the request.\n\n' }}{% endif %}"
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\n' }}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)

_FALLBACK_TEMPLATES = {"chatml": CHATML, "alpaca": ALPACA}


class TemplateError(ValueError):
    """A chat template that cannot be used for what was asked; the message says what to do."""


def training_template(tokenizer, fallback: str = "chatml") -> str:
    """The chat template to render with: the model's own where its family is known (or it is marked for
    assistant-only loss already), else trl's marked copy of it."""
    if fallback not in FALLBACKS:
        raise TemplateError(msg("Unknown template fallback '{fallback}'; choose one of {choices}.",
                                fallback=fallback, choices=", ".join(FALLBACKS)))
    template = tokenizer.chat_template
    if not template:
        return _FALLBACK_TEMPLATES[fallback]
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()))
    if families.of_template(template) is not None:
        return template
    try:
        patched = get_training_chat_template(tokenizer)
    except (ValueError, NotImplementedError):
        patched = None
    if patched:
        return patched
    if has_generation_markers(template):
        return template
    raise TemplateError(msg(
        "This model's chat template cannot mark the assistant's replies, so training only on replies is "
        "not possible with it. Pick the ChatML template instead, or turn off 'train on assistant replies only'."
    ))


def prepare_tokenizer(tokenizer, fallback: str = "chatml", template_choice: str = "model"):
    """Give the tokenizer its training template and make sure eos and pad are set.

    `template_choice` is "model" (the model's own, falling back to `fallback` when it has none),
    "chatml" or "alpaca" (forced).
    """
    if template_choice == "model":
        tokenizer.chat_template = training_template(tokenizer, fallback)
    else:
        tokenizer.chat_template = training_template(_NoTemplate(), template_choice)
        if template_choice == "chatml" and "<|im_end|>" in tokenizer.get_vocab():
            tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _NoTemplate:
    chat_template = None


def load_tokenizer(path, template: str | None = "model", fallback: str = "chatml", trust_remote_code: bool = False):
    """The tokenizer saved at `path`, the one way every part of the app loads one. With a `template`
    ("model", "chatml" or "alpaca") it is prepared for chat and training (`prepare_tokenizer`); with
    None it is returned as saved (a run's tokenizer, which already carries its template)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    if template is None:
        return tokenizer
    return prepare_tokenizer(tokenizer, fallback=fallback, template_choice=template)


def stop_strings(tokenizer) -> list[str]:
    """End-of-turn markers that end a reply even where the tokenizer's eos differs."""
    vocab = tokenizer.get_vocab()
    family = families.of_template(tokenizer.chat_template)
    ends = family.end_of_turn if family else families.all_end_of_turn()
    return [s for s in ends if s in vocab] or [tokenizer.eos_token]


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Token ids that end a reply: the end-of-turn markers, the tokenizer's eos and the model's own.
    Stopping on ids costs nothing per token, unlike text stop strings."""
    ids = [tokenizer.convert_tokens_to_ids(s) for s in stop_strings(tokenizer)] + [tokenizer.eos_token_id]
    model_eos = getattr(generation_config, "eos_token_id", None)
    ids += model_eos if isinstance(model_eos, list) else [model_eos]
    unk = tokenizer.unk_token_id
    return sorted({i for i in ids if i is not None and (i != unk or unk == tokenizer.eos_token_id)})


def reply_spans(text: str, family: families.Family) -> list[tuple[int, int]]:
    """Character spans of the assistant replies in `text` rendered by a `family` template: from the
    end of the reply opener nearest before each end of turn, to the end of that end of turn."""
    ends = [m.end() for m in re.finditer("|".join(map(re.escape, family.end_of_turn)), text)]
    opens = [m.end() for m in re.finditer("|".join(map(re.escape, family.reply_opens)), text)]
    spans, previous = [], 0
    for end in ends:
        started = [o for o in opens if previous <= o < end]
        if started:
            spans.append((started[-1], end))
        previous = end
    return spans
