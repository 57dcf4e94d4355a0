"""Streaming generation from a list of messages, rendered by the tokenizer's chat template."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from engine.sampling import Sampling
from engine.templates import stop_token_ids


# Every compiled reply, and the build of the compiled step, runs on this one thread: compiled CUDA
# graphs keep per-thread state (with torch 2.11, a graph compiled on one thread failed on the next).
# Uncompiled replies run on the other, so that one can answer while the compiled step is being built.
# The model lock allows one reply at a time.
_GENERATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
_UNCOMPILED = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-uncompiled")


@dataclass(frozen=True)
class Stats:
    first_token_s: float
    new_tokens: int
    seconds: float
    finish: str  # "stop" (end of turn or stop string), "length", "cancelled"

    @property
    def tokens_per_s(self) -> float:
        decode = self.seconds - self.first_token_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.new_tokens} tokens in {self.seconds:.1f} s · first token after {self.first_token_s:.2f} s · "
            f"{self.tokens_per_s:.1f} tokens/s · finished: {self.finish}"
        )


@dataclass(frozen=True)
class Reply:
    text: str
    stats: Stats | None = None  # set on the last item only


class _CountingStreamer(TextIteratorStreamer):
    """Counts the new tokens, and decodes and hands text to the reading thread at most every UPDATE_S
    seconds (the first piece at once). Decoding the reply so far and waking that thread for every
    token took the generating thread's time between two decoding steps (bench/stream_overhead.py),
    and no screen shows more than a few dozen updates a second."""

    UPDATE_S = 1 / 30

    def __init__(self, tokenizer, started: float):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=None)
        self.started = started
        self.first_token_at: float | None = None
        self.new_tokens = 0
        self._prompt_seen = False
        self._handed_at = float("-inf")

    def put(self, value):
        if self._prompt_seen:
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
            self.new_tokens += value.numel()
            if time.perf_counter() - self._handed_at < self.UPDATE_S:
                self.token_cache.extend(value.reshape(-1).tolist())  # decoded with the next hand-over
                return
        self._prompt_seen = True
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            self._handed_at = time.perf_counter()
        if text or stream_end:
            super().on_finalized_text(text, stream_end)


class _Cancelled(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        return self.event.is_set()


def render_prompt(tokenizer, messages: list[dict]) -> torch.Tensor:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
        "input_ids"
    ]


class CompiledDecoding:
    """On CUDA, a key/value cache of fixed size kept across replies: with it, `generate` compiles the
    decoding step once and replays it as a CUDA graph (the per-token Python and launch overhead is
    what held chat at a tenth of the card's memory bandwidth; see bench/RESULTS.md). A fixed size
    means prompts of any length reuse the same graph. Compiling takes most of a minute on an 8B
    model, so it starts in the background at load, with two short greedy replies on the compiled
    replies' thread; until they are done `cache` is None and replies run uncompiled."""

    WARM_UP_TOKENS = 16

    def __init__(self, model, max_len: int):
        from transformers import StaticCache

        _allow_4bit_compile(model)
        self._cache = StaticCache(config=model.config, max_cache_len=max_len)
        self._stop = threading.Event()
        self._built = _GENERATOR.submit(self._build, model)

    def _build(self, model) -> None:
        ids = torch.zeros((1, 8), dtype=torch.long, device=model.device)
        try:
            with torch.inference_mode():
                for _ in range(2):  # the first compiles the step, the second records its CUDA graphs
                    self._cache.reset()
                    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=self._cache,
                                   max_new_tokens=self.WARM_UP_TOKENS, min_new_tokens=self.WARM_UP_TOKENS,
                                   do_sample=False, pad_token_id=0,
                                   stopping_criteria=StoppingCriteriaList([_Cancelled(self._stop)]))
        except Exception:
            logging.getLogger(__name__).exception("Building the compiled decoding step failed; replies stay uncompiled.")
            raise

    @property
    def state(self) -> str:
        """'building', then 'compiled' (replies use it), or 'failed' or 'stopped' (replies stay uncompiled)."""
        if not self._built.done():
            return "building"
        if self._built.exception() is not None:
            return "failed"
        return "stopped" if self._stop.is_set() else "compiled"

    @property
    def cache(self):
        """The cache for the next reply: None until the compiled step is built."""
        return self._cache if self.state == "compiled" else None

    def wait(self, timeout: float | None = None) -> str:
        wait([self._built], timeout)
        return self.state

    def stop(self) -> None:
        """Cut the build short (the model is being unloaded)."""
        self._stop.set()


def compiled_decoding(model, max_len: int) -> CompiledDecoding | None:
    """A CompiledDecoding on CUDA, None elsewhere."""
    return CompiledDecoding(model, max_len) if model.device.type == "cuda" else None


def _allow_4bit_compile(model) -> None:
    """bitsandbytes (>= 0.46) runs its 4-bit matmul as a torch custom op that torch.compile captures
    whole, but transformers 5.17 still reports its 4-bit quantizer as not compile-able, so `generate`
    would skip the compiled decoding step. Lift that flag for this model only."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or quantizer.is_compileable or not getattr(model, "is_loaded_in_4bit", False):
        return
    cls = type(quantizer)
    quantizer.__class__ = type(cls.__name__, (cls,), {"is_compileable": True})


def stream(
    model, tokenizer, messages: list[dict], sampling: Sampling, cancel: threading.Event | None = None, cache=None
) -> Iterator[Reply]:
    """Yield the growing reply; the last item carries the statistics. Stops at the end of the
    assistant's turn (any end-of-turn token), at max_new_tokens, or when `cancel` is set."""
    cancel = cancel or threading.Event()
    input_ids = render_prompt(tokenizer, messages).to(model.device)
    cache_kwargs = {}
    if cache is not None and input_ids.shape[1] + sampling.max_new_tokens <= cache.get_max_length():
        cache_kwargs["past_key_values"] = cache
    started = time.perf_counter()
    streamer = _CountingStreamer(tokenizer, started)
    failure: list[BaseException] = []

    def run():
        try:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            with torch.inference_mode():
                if cache_kwargs:
                    cache.reset()  # the previous reply's keys and values
                model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
                    eos_token_id=stop_token_ids(tokenizer, model.generation_config),
                    pad_token_id=tokenizer.pad_token_id,
                    **cache_kwargs,
                    **sampling.generate_kwargs(),
                )
        except BaseException as e:  # surfaced in the consumer's thread below
            failure.append(e)
            streamer.end()

    done = (_GENERATOR if cache_kwargs else _UNCOMPILED).submit(run)
    text = ""
    finished = False
    try:
        for piece in streamer:
            text += piece
            yield Reply(text.strip())
        finished = True
    finally:
        if not finished:  # the consumer went away mid-answer: end the generation thread
            cancel.set()
        done.result()
    if failure:
        raise failure[0]
    ended = time.perf_counter()
    if cancel.is_set():
        finish = "cancelled"
    elif streamer.new_tokens >= sampling.max_new_tokens:
        finish = "length"
    else:
        finish = "stop"
    first = (streamer.first_token_at or ended) - started
    yield Reply(text.strip(), Stats(first, streamer.new_tokens, ended - started, finish))
