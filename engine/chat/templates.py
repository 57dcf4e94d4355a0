"""Chat templates: the one rendering shared by the data preview, training and chat.

Assistant-only loss needs `{% generation %}` markers around each assistant reply (trl reads them
through `return_assistant_tokens_mask`). trl ships marked copies of many templates; SmolLM2's and
Llama 3.1's and 3.2's are not among them, so marked copies are made here, rendering byte-identically
to the originals. A model with no template gets a fallback the person picks: ChatML (default) or the
tutorial's Alpaca prompt.
"""

from __future__ import annotations

from trl.chat_template_utils import (get_training_chat_template, has_generation_markers, llama3_1_chat_template,
                                     llama3_2_chat_template)

FALLBACKS = ("chatml", "alpaca")

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n"
    "' + message['content'] + '<|im_end|>' + '\n"
    "'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n"
    "' }}{% endif %}"
)

SMOLLM2_MARKED = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "' }}{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

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

# Llama 3.1 and 3.2 (trl's copies of the models' own templates) write every turn with this one line.
LLAMA3_TURN = ("{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
               "+ '<|eot_id|>' }}")
LLAMA3_TURN_MARKED = ("{%- if message['role'] == 'assistant' %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
                      "{% generation %}{{- message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
                      "{%- else %}" + LLAMA3_TURN + "{%- endif %}")

_MARKED = {SMOLLM2: SMOLLM2_MARKED,
           **{t: t.replace(LLAMA3_TURN, LLAMA3_TURN_MARKED) for t in (llama3_1_chat_template, llama3_2_chat_template)}}
_FALLBACK_TEMPLATES = {"chatml": CHATML, "alpaca": ALPACA}


class TemplateError(ValueError):
    """A chat template that cannot be used for what was asked; the message says what to do."""


def training_template(tokenizer, fallback: str = "chatml") -> str:
    """The chat template to render with: the model's own, marked for assistant-only loss."""
    if fallback not in FALLBACKS:
        raise TemplateError(f"Unknown template fallback '{fallback}'; choose one of {', '.join(FALLBACKS)}.")
    template = tokenizer.chat_template
    if not template:
        return _FALLBACK_TEMPLATES[fallback]
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()))
    if template in _MARKED:
        return _MARKED[template]
    try:
        patched = get_training_chat_template(tokenizer)
    except (ValueError, NotImplementedError):
        patched = None
    if patched:
        return patched
    if has_generation_markers(template):
        return template
    raise TemplateError(
        "This model's chat template cannot mark the assistant's replies, so training only on replies is "
        "not possible with it. Pick the ChatML template instead, or turn off 'train on assistant replies only'."
    )


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
    return [s for s in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>") if s in vocab] or [tokenizer.eos_token]


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Token ids that end a reply: the end-of-turn markers, the tokenizer's eos and the model's own.
    Stopping on ids costs nothing per token, unlike text stop strings."""
    ids = [tokenizer.convert_tokens_to_ids(s) for s in stop_strings(tokenizer)] + [tokenizer.eos_token_id]
    model_eos = getattr(generation_config, "eos_token_id", None)
    ids += model_eos if isinstance(model_eos, list) else [model_eos]
    unk = tokenizer.unk_token_id
    return sorted({i for i in ids if i is not None and (i != unk or unk == tokenizer.eos_token_id)})
