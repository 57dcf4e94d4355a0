"""Many chats answered together on the one resident model: a step-synchronous batcher. Requests from
any session join the running batch between two decoding steps (their prompt is prefilled alone, its
keys and values left-padded into the batch's cache); every row samples with its own settings and
generator, and runs its own adapter (peft's mixed batch); a row that ends (end of turn, its length,
its time limit, its reader's Stop) leaves the batch alone. Beyond `Capacity` a request is refused at
once with `Busy` ("retry in N s"), never queued without end.

transformers' own continuous batching (`generate_batch`, ContinuousBatchingManager) was not used: it
takes one generation config for the whole batch and cannot pass peft's per-row `adapter_names`."""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import defaultdict, deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import (DynamicCache, LogitsProcessorList, MinPLogitsWarper, NoBadWordsLogitsProcessor,
                          RepetitionPenaltyLogitsProcessor, SequenceBiasLogitsProcessor, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)
from transformers.cache_utils import DynamicLayer

from engine.chat.generation import Limits, Prompt, Reply, Stats, limit_notices
from engine.chat.sampling import Sampling
from engine.i18n import joined, msg

log = logging.getLogger(__name__)

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch
UPDATE_S = 1 / 30  # as generation._CountingStreamer: no screen shows more updates than that
ENV = {"max_rows": "WORKBENCH_MAX_CHATS", "per_minute": "WORKBENCH_CHATS_PER_MINUTE"}
_SCHEDULERS: "weakref.WeakSet[Scheduler]" = weakref.WeakSet()


class Capacity(BaseModel):
    """How many replies are written at once (rows of the batch), and how many requests one session may
    start a minute."""

    model_config = ConfigDict(frozen=True)

    max_rows: int = Field(24, ge=1, le=256)
    per_minute: int = Field(30, ge=1, le=10000)

    @classmethod
    def from_env(cls) -> "Capacity":
        """The defaults, with each set in the environment (ENV) in their place; a value that is not valid
        is logged and the default kept."""
        capacity = cls()
        for name, var in ENV.items():
            raw = os.environ.get(var, "").strip()
            if raw:
                try:
                    capacity = cls.model_validate({**capacity.model_dump(), name: raw})
                except ValidationError:
                    log.warning("%s=%r is not a valid whole number; using the default %s.", var, raw,
                                cls.model_fields[name].default)
        return capacity


class ServingError(ValueError):
    """A reply the scheduler could not write; the message says what to do."""


class Busy(ServingError):
    """Refused at once: too many replies are being written, or this session asked too often."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def model_rules(generation_config) -> LogitsProcessorList:
    """What a model's generation config says about every reply, which `generate` would apply too: token
    sequences it favours or avoids (`sequence_bias`) and words it never writes (`bad_words_ids`)."""
    rules = LogitsProcessorList()
    if getattr(generation_config, "sequence_bias", None):
        rules.append(SequenceBiasLogitsProcessor(generation_config.sequence_bias))
    if getattr(generation_config, "bad_words_ids", None):
        rules.append(NoBadWordsLogitsProcessor(generation_config.bad_words_ids, generation_config.eos_token_id))
    return rules


@dataclass(eq=False)
class Row:
    """One reply being written: its prompt, settings, and what has been decoded so far."""

    prompt: Prompt
    sampling: Sampling
    adapter: str | None  # a name attached to the model (ModelManager's), None for the base
    cancel: threading.Event
    limits: Limits
    asked: int  # the max new tokens asked for (the prompt may leave fewer)
    max_length: int
    prefix: str = ""  # the reply this one continues
    rules: LogitsProcessorList | None = None  # the model's own, from its generation config (`model_rules`)
    queued_at: float = field(default_factory=time.perf_counter)
    tokens: list[int] = field(default_factory=list)
    finish: str | None = None
    error: BaseException | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    deadline: float = math.inf
    wake: threading.Event = field(default_factory=threading.Event)  # a new token, or the end (shared by a group)
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        s = self.sampling
        self.warpers = LogitsProcessorList(
            ([TemperatureLogitsWarper(s.temperature)] if s.temperature not in (0.0, 1.0) else [])
            + ([TopKLogitsWarper(s.top_k)] if s.top_k else [])
            + ([TopPLogitsWarper(s.top_p)] if s.top_p < 1.0 else [])
            + ([MinPLogitsWarper(s.min_p)] if s.min_p else []))
        self.penalty = RepetitionPenaltyLogitsProcessor(s.repetition_penalty) if s.repetition_penalty != 1.0 else None
        seed = s.seed if s.seed is not None else torch.seed()
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def room(self) -> int:
        return self.prompt.max_new_tokens

    def pick(self, logits: torch.Tensor) -> int:
        """The next token from this row's logits (shape [1, vocab]), by its own sampling."""
        scores = logits.float().cpu()
        seen = torch.cat([self.prompt.input_ids, torch.tensor([self.tokens], dtype=torch.long)], dim=1)
        if self.rules:
            scores = self.rules(seen, scores)
        if self.penalty is not None:
            scores = self.penalty(seen, scores)
        if self.sampling.greedy:
            return int(scores.argmax(-1))
        probs = torch.softmax(self.warpers(seen, scores), dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def end(self, finish: str | None, error: BaseException | None = None) -> None:
        self.finish, self.error, self.ended_at = finish, error, time.perf_counter()
        self.done.set()
        self.wake.set()


class Scheduler:
    """The running batch. `turn()` is a context manager that holds the model for one step and yields
    the loaded model (an object with `model`, `tokenizer`, `adapters`, `peft_names`), or None."""

    def __init__(self, turn: Callable, eos: Callable[[object], list[int]], capacity: Capacity | None = None):
        self._turn, self._eos = turn, eos
        self.capacity = capacity or Capacity.from_env()
        self._lock = threading.Condition()
        self._pending: list[Row] = []
        self._rows: list[Row] = []  # the batch, in the order of the cache's rows
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # [rows, columns]: 1 where the cache holds a real token
        self._for: object = None  # the loaded model the cache belongs to
        self._asked: dict[str, deque[float]] = defaultdict(deque)
        self._step_s = 0.1  # a recent decoding step's time, for "retry in N s"
        self.peak = 0  # the most rows decoded in one step so far
        self._thread: threading.Thread | None = None
        self._closed = False
        _SCHEDULERS.add(self)

    def close(self) -> None:
        """End every reply and the decoding thread, and wait for it: a daemon thread still inside a torch
        call when the interpreter exits aborts the process ("terminate called without an active exception")."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._lock.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    @property
    def active(self) -> int:
        """Replies being written now or about to join the batch."""
        with self._lock:
            return len(self._rows) + len(self._pending)

    @property
    def batch(self) -> int:
        """Rows of the batch at its last step."""
        return len(self._rows)

    def submit(self, rows: list[Row], session: str | None = None) -> list[Row]:
        """Queue `rows` for the next step, all or none; Busy where that would pass the capacity or this
        session's requests a minute."""
        now = time.perf_counter()
        with self._lock:
            if self._closed:
                raise _shutting_down()
            if session is not None:
                asked = self._asked[session]
                while asked and now - asked[0] > 60:
                    asked.popleft()
                if len(asked) + 1 > self.capacity.per_minute:
                    wait = max(1, math.ceil(60 - (now - asked[0])))
                    raise Busy(msg("You sent {n} requests in the last minute, the most one session may send "
                                   "(WORKBENCH_CHATS_PER_MINUTE). Retry in {s} s.", n=len(asked), s=wait), wait)
            busy = len(self._rows) + len(self._pending)
            if busy + len(rows) > self.capacity.max_rows:
                wait = self._retry_after(now)
                raise Busy(msg("The model is busy: it is writing {n} replies, the most it writes at once "
                               "(WORKBENCH_MAX_CHATS). Retry in {s} s.", n=busy, s=wait), wait)
            if session is not None:
                self._asked[session].append(now)
            for row in rows[1:]:
                row.wake = rows[0].wake
            self._pending.extend(rows)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="serving", daemon=True)
                self._thread.start()
            self._lock.notify_all()
        return rows

    def _retry_after(self, now: float) -> int:
        """When the first row is likely to end: its tokens left at the recent step time, or its time limit."""
        left = [min((r.room - len(r.tokens)) * self._step_s, r.deadline - now) for r in self._rows + self._pending]
        return max(1, min(120, math.ceil(min(left, default=1.0))))

    def replies(self, rows: list[Row], tokenizer) -> Iterator[list[Reply]]:
        """The rows' growing replies together (rows submitted together share one wake-up), at most every
        UPDATE_S; in the last item each carries its statistics. A reader that goes away ends its rows."""
        notices = [joined(limit_notices(r.prompt, None, r.asked, r.limits, r.max_length)) for r in rows]
        finished = False
        try:
            while True:
                rows[0].wake.wait()
                rows[0].wake.clear()
                if all(r.done.is_set() for r in rows):
                    break
                shown = time.perf_counter()
                yield [Reply(self._text(r, tokenizer), notice=n) for r, n in zip(rows, notices)]
                time.sleep(max(0.0, UPDATE_S - (time.perf_counter() - shown)))
            finished = True
        finally:
            if not finished:  # ended before the reader leaves: nothing of it runs on after
                for row in rows:
                    row.cancel.set()
                for row in rows:
                    row.done.wait()
        for row in rows:
            if row.error is not None:
                raise row.error
        yield [Reply(self._text(r, tokenizer), self._stats(r)) for r in rows]

    @staticmethod
    def _stats(row: Row) -> Stats:
        first = (row.first_token_at or row.ended_at) - row.queued_at
        lines = limit_notices(row.prompt, row.finish, row.asked, row.limits, row.max_length)
        tokens = len(row.tokens) + (row.finish == "stop")  # the end-of-turn token counts, as in generation.stream
        return Stats(first, tokens, row.ended_at - row.queued_at, row.finish, tuple(lines))

    @staticmethod
    def _text(row: Row, tokenizer) -> str:
        return (row.prefix + tokenizer.decode(row.tokens, skip_special_tokens=True)).strip()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._lock.wait_for(lambda: self._closed or self._pending or self._rows, timeout=30):
                    self._thread = None  # idle: the next submit starts another
                    return
                closed = self._closed
            if closed:
                self._fail(_shutting_down())
                return
            with self._turn() as loaded:
                try:
                    self._step(loaded)
                except Exception as e:
                    log.exception("A decoding step failed")
                    self._fail(ServingError(msg("Writing the reply failed; the details are in the app's log. "
                                                "Send the message again.")) if not isinstance(e, ServingError) else e)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            rows, self._rows, self._pending = self._rows + self._pending, [], []
        for row in rows:
            row.end(None, error)
        self._cache = self._mask = None

    def _step(self, loaded) -> None:
        if loaded is None or (self._rows and loaded is not self._for):
            self._fail(ServingError(msg("The model was unloaded while the reply was being written; load a "
                                        "model on the Model tab and send the message again.")))
            return
        self._for = loaded
        with self._lock:
            joining = list(self._pending)  # each stays counted as pending until it is in the batch
        for row in joining:
            if not self._plain_cache() and self._rows:
                continue  # this model's cache cannot be merged: the row waits for the batch to end
            row.deadline = time.perf_counter() + row.limits.seconds
            self._prefill(loaded, row)
        self._end_rows()
        if self._rows:
            self._decode(loaded)
            self._end_rows()

    def _plain_cache(self) -> bool:
        return self._cache is None or all(type(layer) is DynamicLayer for layer in self._cache.layers)

    def _prefill(self, loaded, row: Row) -> None:
        """The row's prompt alone, then its keys and values into the batch's cache, left-padded."""
        if row.cancel.is_set():
            with self._lock:
                self._pending.remove(row)
            row.end("cancelled")
            return
        cache = DynamicCache(config=loaded.model.config)
        ids = row.prompt.input_ids.to(loaded.model.device)
        context, kwargs = _adapters(loaded, [row.adapter])
        with torch.inference_mode(), context:
            out = loaded.model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=cache,
                               use_cache=True, logits_to_keep=1, **kwargs)
        self._take(loaded, row, out.logits[:, -1])
        mask = torch.ones((1, ids.shape[1]), dtype=torch.long, device=ids.device)
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            for mine, theirs in zip(self._cache.layers, cache.layers):
                mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
                mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)])
            self._mask = torch.cat([_left_pad(self._mask, width, dim=1), _left_pad(mask, width, dim=1)])
        with self._lock:
            self._rows.append(row)
            self._pending.remove(row)

    def _decode(self, loaded) -> None:
        """One new token for every row of the batch."""
        started = time.perf_counter()
        device = loaded.model.device
        ids = torch.tensor([[row.tokens[-1]] for row in self._rows], device=device)
        positions = self._mask.sum(dim=1, keepdim=True)
        mask = torch.cat([self._mask, torch.ones_like(positions)], dim=1)
        context, kwargs = _adapters(loaded, [row.adapter for row in self._rows])
        with torch.inference_mode(), context:
            out = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self._cache,
                               use_cache=True, **kwargs)
        self._mask = mask
        logits = out.logits[:, -1]
        for i, row in enumerate(self._rows):
            self._take(loaded, row, logits[i:i + 1])
        self.peak = max(self.peak, len(self._rows))
        self._step_s = 0.8 * self._step_s + 0.2 * (time.perf_counter() - started)

    def _take(self, loaded, row: Row, logits: torch.Tensor) -> None:
        token = row.pick(logits)
        row.first_token_at = row.first_token_at or time.perf_counter()
        if token in self._eos(loaded):
            row.finish = "stop"
            return
        row.tokens.append(token)
        if len(row.tokens) >= row.room:
            row.finish = "length"
        row.wake.set()

    def _end_rows(self) -> None:
        """Rows that ended leave the batch, and the columns no row uses any more leave the cache."""
        now = time.perf_counter()
        for row in self._rows:
            if row.finish is None:
                row.finish = "cancelled" if row.cancel.is_set() else "time" if now > row.deadline else None
        keep = [i for i, row in enumerate(self._rows) if row.finish is None]
        for row in self._rows:
            if row.finish is not None:
                row.end(row.finish)
        if len(keep) == len(self._rows):
            return
        with self._lock:
            self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache = self._mask = None
            return
        index = torch.tensor(keep, device=self._mask.device)
        self._mask = self._mask[index]
        start = int(self._mask.any(dim=0).long().argmax())  # the first column some row still uses
        self._mask = self._mask[:, start:]
        for layer in self._cache.layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]


def _shutting_down() -> ServingError:
    return ServingError(msg("The app is shutting down; send the message again once it is back."))


@atexit.register
def _close_all() -> None:
    for scheduler in list(_SCHEDULERS):
        scheduler.close()


def _left_pad(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    """`t` with zeros before its columns along `dim` (the sequence), up to `width`."""
    missing = width - t.shape[dim]
    if not missing:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _adapters(loaded, names: list[str | None]):
    """The context and forward arguments that run row i with adapter names[i]: one adapter (or none) for
    the whole batch where the rows agree, peft's mixed batch where they do not."""
    if not loaded.adapters:
        return nullcontext(), {}
    if len(set(names)) == 1:
        if names[0] is None:
            return loaded.model.disable_adapter(), {}
        return _active(loaded.model, loaded.peft_names[names[0]]), {}
    return nullcontext(), {"adapter_names": [loaded.peft_names[n] if n else BASE for n in names]}


@contextmanager
def _active(model, peft_name: str):
    previous = model.active_adapter
    model.set_adapter(peft_name)
    try:
        yield
    finally:
        model.set_adapter(previous)
