"""Random-init models of real architectures, saved and loaded as a user would load a Hub model.
Weights' values don't matter for speed and memory; no weights can reach the GPU machine anyway."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path("/tmp/models")  # where build() saves the shapes

SHAPES = {
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=True),
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=False),
    "tiny-llama": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, tie_word_embeddings=True),
}
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
    config = LlamaConfig(vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
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
    import random

    rng = random.Random(seed)
    return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(n))


def run_config(shape: str, cmd: list[str], deadline: float, cap_s: float, least_s: float = 30) -> dict:
    """Build the shape, then run one configuration's process (`cmd`, which prints a `RESULT {json}`
    line), all before `deadline` (time.time()): building counts against a call's budget too, so the
    call ends in time. The result, or {"error": ...}."""
    try:
        if deadline - time.time() < least_s:
            raise subprocess.TimeoutExpired(cmd, 0)
        if not (MODELS / shape / "config.json").exists():  # a process of its own, so the GPU is free after it
            subprocess.run([sys.executable, "-c", f"from bench.gpu_models import build; build({shape!r})"], cwd=ROOT,
                           check=True, timeout=deadline - time.time())
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=min(deadline - time.time(), cap_s))
    except subprocess.TimeoutExpired:
        return {"error": "out of time (--budget-s)"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": (proc.stderr or proc.stdout)[-1200:]}
