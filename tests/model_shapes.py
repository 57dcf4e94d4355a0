"""Random-init models of real architectures (Llama 3.2 1B, Llama 3.1 8B and 70B, a tiny llama), their word-level
ChatML tokenizer and chat-like rows of bench lengths: shared by the GPU tests, the plan's memory tests
and the GPU benchmarks (bench/gpu_models.py, bench/gpu_train.py import them from here). Weights' values
don't matter for speed and memory; no weights can reach the GPU machine anyway."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

MODELS = Path("/tmp/models")  # where build() saves the shapes
MAX_LEN = 2048

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=True),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=False),
    "llama-3.1-70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                          num_key_value_heads=8, tie_word_embeddings=False),
    "tiny-llama": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, tie_word_embeddings=True),
}
VOCAB = 128256  # Llama 3's
WORDS = 4000  # tokenizer vocabulary: one token per word, so a prompt of N words is N tokens


def tokenizer():
    """A word-level tokenizer with ChatML special tokens and a ChatML chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from engine.chat.templates import CHATML

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(specials + ["\n", "system", "user", "assistant"] + [f"w{i}" for i in range(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def config_only(shape: str, folder: Path) -> Path:
    """The shape's config and tokenizer in `folder`/shape, no weights: enough for the plan."""
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=VOCAB, **SHAPES[shape]).save_pretrained(folder / shape)
    tokenizer().save_pretrained(folder / shape)
    return folder / shape


def build(shape: str, root: Path = MODELS) -> Path:
    """Save a random-init bf16 model of `shape` (once) and return its folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = root / shape
    if (out / "config.json").exists():
        return out
    tok = tokenizer()
    # No pad_token_id, as in Llama 3's own configs: with one, the embedding's padding row starts at zero, and
    # with tied weights the end-of-turn token (also the pad token here) could then never win: a run could not
    # learn to end its reply.
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=8192, rope_theta=500000.0,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         dtype="bfloat16", **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


def prompt_words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(n))


def lengths(kind: str, n: int, seed: int = 0) -> list[int]:
    """fixed: every row MAX_LEN tokens; variable: log-normal like roleplay chats, median 600, capped."""
    rng = random.Random(seed)
    if kind == "fixed":
        return [MAX_LEN] * n
    return [max(64, min(MAX_LEN, int(rng.lognormvariate(math.log(600), 0.7)))) for _ in range(n)]


def write_data(kind: str, path: Path, n: int) -> Path:
    """Conversations whose rendered length is the drawn one: a 24-token question, the rest the reply."""
    with path.open("w") as f:
        for i, total in enumerate(lengths(kind, n)):
            reply = total - 24 - 8  # ChatML markers: 4 tokens a turn
            f.write(json.dumps({"messages": [
                {"role": "user", "content": prompt_words(24, seed=i)},
                {"role": "assistant", "content": prompt_words(reply, seed=10_000 + i)},
            ]}) + "\n")
    return path


# The special tokens of each family's tokenizer (engine/chat/families.yaml keys): bos, eos, the others.
FAMILY_TOKENS = {
    "mistral": ("<s>", "</s>", ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                                "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]),
    "qwen": ("<|im_start|>", "<|im_end|>", ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
                                           "</tool_call>", "<tool_response>", "</tool_response>"]),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>", ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                                                    "<|eom_id|>", "<|python_tag|>"]),
    "gemma": ("<bos>", "<eos>", ["<start_of_turn>", "<end_of_turn>"]),
    "phi3": ("<s>", "<|endoftext|>", ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]),
}
# A tiny config of each family's architecture: (transformers config class, tokens, extra settings).
FAMILY_SHAPES = {
    "mistral": ("MistralConfig", "mistral", {}),
    "qwen3": ("Qwen3Config", "qwen", {"head_dim": 16}),
    "qwen2": ("Qwen2Config", "qwen", {}),
    "llama": ("LlamaConfig", "llama3", {}),
    "gemma2": ("Gemma2Config", "gemma", {"head_dim": 256}),  # = query_pre_attn_scalar, as llama.cpp and GGUF readers take it
    "gemma3_text": ("Gemma3TextConfig", "gemma", {"head_dim": 16}),
    "phi3": ("Phi3Config", "phi3", {"pad_token_id": None}),  # its default, 32000, is past a small vocabulary
}
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=2048, tie_word_embeddings=True)


def qwen25_tokenizer(template: str):
    """Qwen2.5's own tokenizer (tools/qwen_vocab.py fetches it once) with a chat template."""
    from transformers import AutoTokenizer

    from tools.qwen_vocab import fetch

    tok = AutoTokenizer.from_pretrained(fetch())
    tok.chat_template = template
    return tok


def family_tokenizer(base_path, tokens: str, template: str):
    """SmolLM2's vocabulary (from `base_path`) with a family's special tokens and its real chat template."""
    from transformers import AutoTokenizer

    bos, eos, specials = FAMILY_TOKENS[tokens]
    tok = AutoTokenizer.from_pretrained(base_path)
    tok.add_special_tokens({"bos_token": bos, "eos_token": eos, "additional_special_tokens": specials})
    tok.chat_template = template
    return tok


# How each sentencepiece family's own tokenizer files are laid out: its tokenizer class, the special pieces
# at the front (pad, eos, bos, unk ids), whether the turn markers are pieces of the model (Gemma, with its
# <mask>) or tokens added after it (Phi-3), and Phi-3's Llama habits: a dummy prefix space before every
# stretch of text (the legacy Llama normalizer its tokenizer.json has) and turn markers that swallow the
# whitespace after them (rstrip), which llama.cpp also applies to Phi-3's special tokens.
SENTENCEPIECE = {
    "gemma": ("GemmaTokenizer", dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
                                     bos_piece="<bos>", unk_piece="<unk>", add_dummy_prefix=False), True, False),
    "phi3": ("LlamaTokenizer", dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True), False, True),
}


def sentencepiece_tokenizer(folder: Path, tokens: str, template: str):
    """A family's tokenizer as its Hub folder ships it: a sentencepiece `tokenizer.model` (a small BPE one,
    trained here on the pirate data set's text, byte fallback for the rest) with the family's special
    tokens, loaded by transformers (which converts it, through protobuf) and saved beside it."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from tokenizers import AddedToken

    tokenizer_class, layout, turns_in_model, llama_habits = SENTENCEPIECE[tokens]
    bos, eos, specials = FAMILY_TOKENS[tokens]
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text((Path(__file__).resolve().parent.parent / "examples" / "data" / "pirate.jsonl").read_text())
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=1000, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2,
        user_defined_symbols=["<mask>", *specials] if turns_in_model else [], **layout)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": tokenizer_class, "bos_token": bos, "unk_token": "<unk>", "legacy": llama_habits}))
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_special_tokens({"bos_token": bos, "eos_token": eos, "additional_special_tokens": [
        AddedToken(t, rstrip=llama_habits, normalized=False, special=True) for t in specials]})
    tok.chat_template = template
    tok.save_pretrained(folder)
    return tok


def family_model(architecture: str, tokenizer):
    """A random tiny model of `architecture` (a config model_type) sized for `tokenizer`."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    config_class, _, extra = FAMILY_SHAPES[architecture]
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        **TINY, **extra)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)
