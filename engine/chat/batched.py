"""Several replies decoded together in one batch on one model, each row streamed as it grows: Compare's
two sides (the base and an adapter, or two adapters, chosen per row through peft's `adapter_names`).
Rows are left-padded, each stops on its own (end of turn, its length), and with a seed every row draws
the same random numbers as it would answering alone, so a side says in the batch what it says alone."""

from __future__ import annotations

import queue
import threading
import time
from contextlib import nullcontext
from typing import Iterator

import torch
from transformers import (LogitsProcessor, LogitsProcessorList, MinPLogitsWarper, StoppingCriteria,
                          StoppingCriteriaList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from engine.chat.generation import Limits, Reply, Stats, fit_prompt, limit_notices, model_context
from engine.chat.sampling import Sampling
from engine.chat.templates import stop_token_ids

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
UPDATE_S = 1 / 30  # as generation._CountingStreamer: no screen shows more updates than that


class _RowSampler(LogitsProcessor):
    """Sampling done row by row, each row with its own generator seeded alike: transformers' warpers in its
    own order (temperature, top-k, top-p, min-p), then one draw per row. Returns scores that keep only
    the drawn token, so `generate` runs greedy and picks it."""

    def __init__(self, sampling: Sampling, rows: int, device):
        self.warpers = LogitsProcessorList(
            ([TemperatureLogitsWarper(sampling.temperature)] if sampling.temperature != 1.0 else [])
            + ([TopKLogitsWarper(sampling.top_k)] if sampling.top_k else [])
            + ([TopPLogitsWarper(sampling.top_p)] if sampling.top_p < 1.0 else [])
            + ([MinPLogitsWarper(sampling.min_p)] if sampling.min_p else []))
        seed = sampling.seed if sampling.seed is not None else torch.seed()
        self.generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(rows)]

    def __call__(self, input_ids, scores):
        probs = torch.softmax(self.warpers(input_ids, scores), dim=-1)
        picked = torch.stack([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)])
        return torch.full_like(scores, float("-inf")).scatter_(1, picked, 0.0)


class _RowStop(StoppingCriteria):
    """Each row's end and why: "stop" (an end-of-turn token), "length" (its own max new tokens), "time" or
    "cancelled" (every row at once). Also counts each row's new tokens and notes when it ended."""

    def __init__(self, cancel: threading.Event, seconds: float, room: list[int], eos: list[int], prompt_len: int):
        self.cancel, self.seconds, self.room, self.prompt_len = cancel, seconds, room, prompt_len
        self.eos = torch.tensor(eos)
        self.deadline = float("inf")
        self.reasons: list[str | None] = [None] * len(room)
        self.lengths = [0] * len(room)  # a row's new tokens when it ended
        self.ended = [0.0] * len(room)

    def start(self) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        new = input_ids.shape[1] - self.prompt_len
        last = torch.isin(input_ids[:, -1].cpu(), self.eos)
        everyone = "cancelled" if self.cancel.is_set() else "time" if time.perf_counter() > self.deadline else None
        for i, reason in enumerate(self.reasons):
            if reason is None:
                reason = everyone or ("stop" if last[i] else "length" if new >= self.room[i] else None)
                if reason:
                    self.reasons[i], self.lengths[i], self.ended[i] = reason, new, time.perf_counter()
        return torch.tensor([r is not None for r in self.reasons], device=input_ids.device)


class _RowStreamer:
    """Collects each row's new tokens and wakes the reader at most every UPDATE_S seconds; the reader
    decodes, so the generating thread does not. `generate` pads a row that has ended: `row` leaves that out."""

    def __init__(self, stop: _RowStop):
        self.stop = stop
        self.tokens: list[list[int]] = [[] for _ in stop.reasons]
        self.first_token_at: float | None = None
        self.wakes: queue.Queue = queue.Queue()
        self._prompt_seen = False
        self._woke_at = float("-inf")

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.first_token_at = self.first_token_at or time.perf_counter()
        for i, token in enumerate(value.reshape(-1).tolist()):
            self.tokens[i].append(token)
        if time.perf_counter() - self._woke_at >= UPDATE_S:
            self._woke_at = time.perf_counter()
            self.wakes.put(True)

    def end(self) -> None:
        self.wakes.put(None)

    def row(self, i: int) -> list[int]:
        tokens = self.tokens[i]
        return tokens[:self.stop.lengths[i]] if self.stop.reasons[i] else list(tokens)


def stream_batch(
    model, tokenizer, conversations: list[list[dict]], sampling: Sampling, cancel: threading.Event | None = None, *,
    adapter_names: list[str] | None = None, max_length: int | None = None, limits: Limits | None = None, hold=None,
) -> Iterator[list[Reply]]:
    """Yield every row's growing reply together; in the last item each carries its statistics. A row is
    a conversation answered by `adapter_names[i]` (peft's mixed batch; BASE for the adapters off), under
    the limits and rules of `generation.stream` (prompt fitting, token and time limits, `hold`)."""
    cancel = cancel or threading.Event()
    limits = limits or Limits.from_env()
    asked = sampling.max_new_tokens
    max_length = max_length or model_context(model)
    prompts = [fit_prompt(tokenizer, messages, max_length, min(asked, limits.max_new_tokens))
               for messages in conversations]
    width = max(p.input_ids.shape[1] for p in prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.stack([torch.nn.functional.pad(p.input_ids[0], (width - p.input_ids.shape[1], 0), value=pad)
                             for p in prompts]).to(model.device)
    attention_mask = torch.stack([torch.arange(width) >= width - p.input_ids.shape[1] for p in prompts]).long()
    room = [p.max_new_tokens for p in prompts]
    eos = stop_token_ids(tokenizer, model.generation_config)
    stop = _RowStop(cancel, limits.seconds, room, [eos] if isinstance(eos, int) else list(eos), width)
    streamer = _RowStreamer(stop)
    kwargs = {"adapter_names": adapter_names} if adapter_names else {}
    if not sampling.greedy:
        kwargs["logits_processor"] = LogitsProcessorList([_RowSampler(sampling, len(prompts), model.device)])
    failure: list[BaseException] = []

    def run():
        try:
            with hold or nullcontext():
                stop.start()
                with torch.inference_mode():
                    model.generate(input_ids=input_ids, attention_mask=attention_mask.to(model.device),
                                   streamer=streamer, stopping_criteria=StoppingCriteriaList([stop]),
                                   eos_token_id=eos, pad_token_id=pad, do_sample=False,
                                   repetition_penalty=sampling.repetition_penalty, max_new_tokens=max(room), **kwargs)
        except BaseException as e:  # surfaced in the consumer's thread below
            failure.append(e)
        finally:
            streamer.end()

    started = time.perf_counter()
    worker = threading.Thread(target=run, name="generate-batch", daemon=True)  # uncompiled: that cache holds one row
    worker.start()
    notices = [limit_notices(p, None, asked, limits, max_length) for p in prompts]

    def texts() -> list[str]:
        return [tokenizer.decode(streamer.row(i), skip_special_tokens=True).strip() for i in range(len(prompts))]

    finished = False
    try:
        while streamer.wakes.get() is not None:
            yield [Reply(text, notice=" ".join(n)) for text, n in zip(texts(), notices)]
        finished = True
    finally:
        if not finished:  # the consumer went away mid-answer: end the generation thread
            cancel.set()
        worker.join()
    if failure:
        raise failure[0]
    ended = time.perf_counter()
    first = (streamer.first_token_at or ended) - started
    replies = []
    for i, text in enumerate(texts()):
        finish = stop.reasons[i] or "length"
        lines = limit_notices(prompts[i], finish, asked, limits, max_length)
        replies.append(Reply(text, Stats(first, len(streamer.row(i)), (stop.ended[i] or ended) - started, finish,
                                         tuple(lines))))
    yield replies
