"""The first reply does not wait for the compiled decoding step (engine/chat/generation.py CompiledDecoding).

On CUDA the step takes most of a minute to compile; here, on the CPU, transformers compiles nothing,
so the build is held back by occupying its thread (the real executor, with a task that waits). The
GPU test in tests/test_gpu.py checks the same with the real compilation."""

import threading

import pytest

from engine.chat import generation
from engine.chat.sampling import Sampling

GREEDY = Sampling.parse(temperature=0, max_new_tokens=12)
ASK = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_path).eval(), AutoTokenizer.from_pretrained(tiny_model_path)


def test_a_reply_comes_while_the_compiled_step_is_built_and_then_uses_it(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    plain = list(generation.stream(model, tokenizer, ASK, GREEDY))[-1]
    gate = threading.Event()
    held = generation._GENERATOR.submit(gate.wait, 60)  # the build's thread is busy until the gate opens
    try:
        decoding = generation.CompiledDecoding(model, 256)
        assert decoding.state == "building" and decoding.cache is None
        early = list(generation.stream(model, tokenizer, ASK, GREEDY, cache=decoding.cache))[-1]
        assert early.text == plain.text and early.stats.new_tokens == plain.stats.new_tokens
        assert decoding.state == "building"  # it answered without waiting for the build
    finally:
        gate.set()
        held.result()
    assert decoding.wait(60) == "compiled" and decoding.cache is not None
    later = list(generation.stream(model, tokenizer, ASK, GREEDY, cache=decoding.cache))[-1]
    assert later.text == plain.text


def test_a_build_stopped_by_an_unload_leaves_replies_uncompiled(model_and_tokenizer):
    model, _ = model_and_tokenizer
    gate = threading.Event()
    held = generation._GENERATOR.submit(gate.wait, 60)
    decoding = generation.CompiledDecoding(model, 256)
    decoding.stop()
    gate.set()
    held.result()
    assert decoding.wait(60) == "stopped" and decoding.cache is None


def test_no_compiled_step_off_cuda(model_and_tokenizer):
    model, _ = model_and_tokenizer
    assert generation.compiled_decoding(model, 256) is None
