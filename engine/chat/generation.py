"""Streaming generation from a list of messages, rendered by the tokenizer's chat template, within
the per-request limits (README, "Limits"): a prompt cut to the max length, a token limit, a time limit."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from engine.chat import compile_cache
from engine.chat.sampling import Sampling
from engine.chat.templates import stop_token_ids
from engine.i18n import Message, joined, msg

log = logging.getLogger(__name__)

# Every compiled reply, and the build of the compiled step, runs on this one thread: compiled CUDA
# graphs keep per-thread state (with torch 2.11, a graph compiled on one thread failed on the next).
# Uncompiled replies run on the other, so that one can answer while the compiled step is being built.
# The model lock allows one reply at a time.
_GENERATOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
_UNCOMPILED = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-uncompiled")

ENV = {"max_new_tokens": "WORKBENCH_MAX_NEW_TOKENS", "seconds": "WORKBENCH_REPLY_SECONDS"}


class Limits(BaseModel):
    """What one request may take of the resident model: new tokens and seconds of generation."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = Field(2048, ge=1, le=8192)
    seconds: float = Field(180.0, gt=0)

    @classmethod
    def from_env(cls) -> "Limits":
        """The defaults, with each limit set in the environment (ENV) in their place; a value that is
        not valid is logged and the default kept, so a typo does not stop the app from starting."""
        limits = cls()
        for field, var in ENV.items():
            raw = os.environ.get(var, "").strip()
            if not raw:
                continue
            try:
                limits = cls.model_validate({**limits.model_dump(), field: raw})
            except ValidationError:
                log.warning("%s=%r is not a valid limit (%s must be a positive number%s); using the default %s.",
                            var, raw, field, ", at most 8192" if field == "max_new_tokens" else "",
                            cls.model_fields[field].default)
        return limits


class PromptTooLong(ValueError):
    """A prompt that does not fit the max length even with every earlier turn left out."""


@dataclass(frozen=True)
class Stats:
    first_token_s: float
    new_tokens: int
    seconds: float
    finish: str  # "stop" (end of turn or stop string), "length", "time" (the time limit), "cancelled"
    notices: tuple[str, ...] = ()  # what a limit did to this reply, in sentences for the screen

    @property
    def tokens_per_s(self) -> float:
        decode = self.seconds - self.first_token_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0

    @property
    def ended(self) -> Message:
        """How the reply ended, in plain words."""
        if self.finish == "length":
            return msg("stopped at the length limit of {count} tokens", count=self.new_tokens)
        return msg({"stop": "the reply is complete", "time": "stopped at the time limit",
                    "cancelled": "stopped by you"}[self.finish])

    def summary(self) -> Message:
        line = msg("{tokens} tokens in {seconds:.1f} s · first token after {first:.2f} s · {speed:.1f} tokens/s · "
                   "{ended}", tokens=self.new_tokens, seconds=self.seconds, first=self.first_token_s,
                   speed=self.tokens_per_s, ended=self.ended)
        return joined([line, joined(self.notices)], "  \n") if self.notices else line


@dataclass(frozen=True)
class Reply:
    text: str
    stats: Stats | None = None  # set on the last item only
    waiting: int = 0  # while queued for the model: how many requests are ahead (no text yet)
    notice: str = ""  # a line for the screen while streaming: the wait, or the earlier turns left out


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


class _Stop(StoppingCriteria):
    """Ends the generation when the reader cancels or the time limit passes, and says which (transformers'
    own `max_time` would not tell a time limit from the end of the turn). Checked once a token."""

    def __init__(self, cancel: threading.Event, seconds: float):
        self.cancel = cancel
        self.seconds = seconds
        self.deadline = float("inf")
        self.reason: str | None = None

    def start(self) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        if self.cancel.is_set():
            self.reason = "cancelled"
        elif time.perf_counter() > self.deadline:
            self.reason = "time"
        return self.reason is not None


def render_prompt(tokenizer, messages: list[dict]) -> torch.Tensor:
    """The prompt for the next assistant turn, or, where the last message is the assistant's, for more of it."""
    more = bool(messages) and messages[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(messages, add_generation_prompt=not more, continue_final_message=more,
                                         return_tensors="pt", return_dict=True)["input_ids"]


@dataclass(frozen=True)
class Prompt:
    input_ids: torch.Tensor
    max_new_tokens: int  # the reply's room: the asked tokens, or what the prompt leaves of the max length
    dropped: int  # earlier messages left out so that it fits


def fit_prompt(tokenizer, messages: list[dict] | str, max_length: int, max_new_tokens: int) -> Prompt:
    """The rendered prompt, fitted to `max_length` tokens for prompt and reply together. The reply is kept
    room for min(max_new_tokens, max_length // 2) tokens; a longer prompt loses whole turns from the front,
    oldest first, so that it still starts with a user message; the system prompt and the newest user
    message are always kept. Where even those two do not fit, PromptTooLong says so. A `str` is a prompt already
    written out (a text completion): it goes to the model as it is, with no chat template."""
    room = min(max_new_tokens, max_length // 2)
    budget = max_length - room
    if isinstance(messages, str):
        ids = tokenizer(messages, return_tensors="pt")["input_ids"]
        if ids.shape[1] > budget:
            raise PromptTooLong(msg("The prompt is {n:,} tokens long, but the loaded model takes at most {budget:,} (its "
                                    "max length of {max_length:,} tokens, less {room:,} kept for the reply).",
                                    n=ids.shape[1], budget=budget, max_length=max_length, room=room))
        return Prompt(ids, min(max_new_tokens, max_length - ids.shape[1]), 0)
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system):]
    ids = render_prompt(tokenizer, system + turns)
    dropped = 0
    if ids.shape[1] > budget:
        starts = [i for i, m in enumerate(turns) if m["role"] == "user" and i > 0]
        shortest = render_prompt(tokenizer, system + turns[starts[-1]:]) if starts else ids
        if shortest.shape[1] > budget:
            long = (msg("The message is {n:,} tokens long with the system prompt", n=shortest.shape[1]) if system
                    else msg("The message is {n:,} tokens long", n=shortest.shape[1]))
            raise PromptTooLong(msg(
                "{long}, but the loaded model takes at most {budget:,} (its max length of {max_length:,} tokens, less "
                "{room:,} kept for the reply). Shorten the message, or load the model with a larger max sequence "
                "length on the Model tab.", long=long, budget=budget, max_length=max_length, room=room))
        lo, hi, ids = 0, len(starts) - 1, shortest  # the first start that fits: longer prompts come earlier
        while lo < hi:
            mid = (lo + hi) // 2
            candidate = render_prompt(tokenizer, system + turns[starts[mid]:])
            if candidate.shape[1] <= budget:
                hi, ids = mid, candidate
            else:
                lo = mid + 1
        dropped = starts[lo]
    return Prompt(ids, min(max_new_tokens, max_length - ids.shape[1]), dropped)


def model_context(model) -> int:
    """The model's own longest sequence, from its config (131072 where the config does not say)."""
    return getattr(model.config.get_text_config(), "max_position_embeddings", None) or 131072


class CompiledDecoding:
    """On CUDA, a key/value cache of fixed size kept across replies: with it, `generate` compiles the
    decoding step once and replays it as a CUDA graph, which removes the per-token Python and launch
    overhead that bounds uncompiled decoding (bench/RESULTS.md). A fixed size means prompts of any
    length reuse the same graph. Compiling is slow on a large model, so it starts in the background
    at load, with two short greedy replies on the compiled replies' thread; until they are done
    `cache` is None and replies run uncompiled."""

    WARM_UP_TOKENS = 16

    def __init__(self, model, max_len: int, cache_dir: Path | None = None):
        from transformers import StaticCache

        _allow_4bit_compile(model)
        self._cache = StaticCache(config=model.config, max_cache_len=max_len)
        self._stop = threading.Event()
        self._artifacts = compile_cache.path(cache_dir, model, max_len) if cache_dir else None
        self.reloaded = False  # whether the build started from the workspace's compile cache (see `source`)
        self._built = _GENERATOR.submit(self._build, model)

    @property
    def source(self) -> str:
        """'cache': the compiled step was rebuilt from the workspace's compile cache; 'fresh': compiled anew."""
        return "cache" if self.reloaded else "fresh"

    def _build(self, model) -> None:
        ids = torch.zeros((1, 8), dtype=torch.long, device=model.device)
        if self._artifacts is not None:
            self.reloaded = compile_cache.reload(self._artifacts)
        try:
            with torch.inference_mode():
                for _ in range(2):  # the first compiles the step, the second records its CUDA graphs
                    self._cache.reset()
                    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=self._cache,
                                   max_new_tokens=self.WARM_UP_TOKENS, min_new_tokens=self.WARM_UP_TOKENS,
                                   do_sample=False, pad_token_id=0,
                                   stopping_criteria=StoppingCriteriaList([_Stop(self._stop, float("inf"))]))
        except Exception:
            logging.getLogger(__name__).exception("Building the compiled decoding step failed; replies stay uncompiled.")
            raise
        if self._artifacts is not None and not self.reloaded and not self._stop.is_set():
            compile_cache.save(self._artifacts)

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


def compiled_decoding(model, max_len: int, cache_dir: Path | None = None) -> CompiledDecoding | None:
    """A CompiledDecoding on CUDA (its compile cache in `cache_dir`), None elsewhere."""
    return CompiledDecoding(model, max_len, cache_dir) if model.device.type == "cuda" else None


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
    model, tokenizer, messages: list[dict] | str, sampling: Sampling, cancel: threading.Event | None = None, cache=None, *,
    max_length: int | None = None, limits: Limits | None = None, hold=None,
) -> Iterator[Reply]:
    """Yield the growing reply; the last item carries the statistics. Stops at the end of the
    assistant's turn (any end-of-turn token), at max_new_tokens or the token limit, at the time limit,
    or when `cancel` is set. `max_length`: prompt and reply together (default: the model's own; see
    `fit_prompt`); `limits`: default `Limits.from_env()`. `hold`: a context manager entered on the
    generating thread around the generation and left there the moment it ends, whether or not the
    reader is still reading (the model manager's turn at the model)."""
    cancel = cancel or threading.Event()
    limits = limits or Limits.from_env()
    asked = sampling.max_new_tokens
    max_length = max_length or model_context(model)
    prompt = fit_prompt(tokenizer, messages, max_length, min(asked, limits.max_new_tokens))
    sampling = sampling.model_copy(update={"max_new_tokens": prompt.max_new_tokens})
    notices = limit_notices(prompt, None, asked, limits, max_length)
    input_ids = prompt.input_ids.to(model.device)
    cache_kwargs = {}
    if cache is not None and input_ids.shape[1] + sampling.max_new_tokens <= cache.get_max_length():
        cache_kwargs["past_key_values"] = cache
    started = time.perf_counter()
    streamer = _CountingStreamer(tokenizer, started)
    stop = _Stop(cancel, limits.seconds)
    failure: list[BaseException] = []

    def run():
        try:
            with hold or nullcontext():
                stop.start()
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                with torch.inference_mode():
                    if cache_kwargs:
                        cache.reset()  # the previous reply's keys and values
                    model.generate(
                        input_ids=input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([stop]),
                        eos_token_id=stop_token_ids(tokenizer, model.generation_config),
                        pad_token_id=tokenizer.pad_token_id,
                        **cache_kwargs,
                        **sampling.generate_kwargs(),
                    )
        except BaseException as e:  # surfaced in the consumer's thread below
            failure.append(e)
            streamer.end()

    done = (_GENERATOR if cache_kwargs else _UNCOMPILED).submit(run)
    continued = not isinstance(messages, str) and messages[-1]["role"] == "assistant"
    text = messages[-1]["content"] if continued else ""  # more of it: the whole reply
    finished = False
    try:
        for piece in streamer:
            text += piece
            yield Reply(text.strip(), notice=" ".join(notices))
        finished = True
    finally:
        if not finished:  # the consumer went away mid-answer: end the generation thread
            cancel.set()
        done.result()
    if failure:
        raise failure[0]
    ended = time.perf_counter()
    finish = stop.reason or ("length" if streamer.new_tokens >= sampling.max_new_tokens else "stop")
    notices = limit_notices(prompt, finish, asked, limits, max_length)
    first = (streamer.first_token_at or ended) - started
    yield Reply(text.strip(), Stats(first, streamer.new_tokens, ended - started, finish, tuple(notices)))


def limit_notices(prompt: Prompt, finish: str | None, asked: int, limits: Limits, max_length: int) -> list[str]:
    """What the limits did to a reply, in sentences for the screen: earlier messages left out, and once it
    has finished (`finish`), a cut by the time limit, or by a length limit shorter than the `asked` tokens."""
    notices = []
    if prompt.dropped == 1:
        notices.append(msg("1 earlier message was left out: the chat is longer than the model's max length of "
                           "{max_length:,} tokens.", max_length=max_length))
    elif prompt.dropped:
        notices.append(msg("{n} earlier messages were left out: the chat is longer than the model's max length of "
                           "{max_length:,} tokens.", n=prompt.dropped, max_length=max_length))
    if finish == "time":
        notices.append(msg("The reply was stopped after {seconds:g} s, the time limit per reply ({setting}); the model "
                           "went on to the next request.", seconds=limits.seconds, setting=ENV['seconds']))
    elif finish == "length" and prompt.max_new_tokens < asked:
        why = (msg("the limit per reply ({setting})", setting=ENV['max_new_tokens'])
               if prompt.max_new_tokens == limits.max_new_tokens
               else msg("all the prompt leaves of the model's max length of {max_length:,} tokens", max_length=max_length))
        notices.append(msg("The reply stopped at {n:,} tokens, {why}.", n=prompt.max_new_tokens, why=why))
    return notices
