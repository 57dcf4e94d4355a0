"""Trainer callbacks: progress into events.jsonl, Stop at the end of a step, probe answers at each save."""

from __future__ import annotations

import resource
import threading
import time
from pathlib import Path

import psutil
import torch
from transformers import TrainerCallback

from engine.train import distributed, probes
from engine.train.runs import EventLog

GB = 1e9
# What trl's preference trainers log, by the name a step event gives it: how far the chosen reply's reward
# is above the rejected one's, and the share of pairs where it is above.
PREFERENCE_METRICS = {"rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy"}


def memory_gb(device: str) -> tuple[float, float]:
    """(now, peak) memory of this training: the GPU's allocations, or this process's resident memory."""
    if device == "cuda":
        return torch.cuda.memory_allocated() / GB, torch.cuda.max_memory_allocated() / GB
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return psutil.Process().memory_info().rss / GB, peak_kib * 1024 / GB


class ProgressCallback(TrainerCallback):
    """A `step` event per logging step: loss, learning rate, grad norm, real tokens/s, memory, ETA."""

    def __init__(self, events: EventLog, device: str):
        self.events = events
        self.device = device
        self.first: tuple[float, int, int] | None = None  # (time, step, tokens) at the first log of this process
        self.last: tuple[float, int] | None = None  # (time, tokens) at the previous log

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.events.write("start", step=state.global_step, max_steps=state.max_steps,
                          epochs=args.num_train_epochs, batch_size=args.per_device_train_batch_size,
                          gradient_accumulation=args.gradient_accumulation_steps)

    def on_save(self, args, state, control, **kwargs):
        self._restart_clock()

    def on_evaluate(self, args, state, control, **kwargs):
        self._restart_clock()

    def _restart_clock(self):
        """Saving, probing and evaluating are not training: tokens/s and ETA count from here."""
        if self.last is not None:
            self.last = (time.time(), self.last[1])

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        at = time.time()
        if not state.is_world_process_zero:
            return
        if "eval_loss" in logs:
            self.events.write("eval", step=state.global_step, epoch=state.epoch, eval_loss=logs["eval_loss"])
            return
        if "loss" not in logs:
            return
        tokens = int(logs.get("real_tokens", 0))
        rate = None
        if self.last is not None and at > self.last[0]:
            rate = (tokens - self.last[1]) / (at - self.last[0])
        self.last = (at, tokens)
        if self.first is None:
            self.first = (at, state.global_step, tokens)
        eta = None
        if state.global_step > self.first[1]:
            per_step = (at - self.first[0]) / (state.global_step - self.first[1])
            eta = per_step * (state.max_steps - state.global_step)
        current, peak = memory_gb(self.device)
        self.events.write(
            "step", step=state.global_step, max_steps=state.max_steps, epoch=state.epoch,
            loss=logs["loss"], learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
            token_accuracy=logs.get("mean_token_accuracy"), tokens=tokens, tokens_per_s=rate,
            memory_gb=round(current, 3), peak_memory_gb=round(peak, 3), eta_s=eta,
            **{name: logs[key] for key, name in PREFERENCE_METRICS.items() if key in logs},
        )


class StopCallback(TrainerCallback):
    """Stop (SIGTERM) takes effect at the end of the current step: save a checkpoint, then end training.
    With several processes, a Stop seen by one is seen by all at the same step."""

    def __init__(self, requested: threading.Event):
        self.requested = requested

    def on_step_end(self, args, state, control, **kwargs):
        if distributed.any_rank(self.requested.is_set()):
            control.should_log = True
            control.should_save = True
            control.should_training_stop = True
        return control


class ProbeCallback(TrainerCallback):
    """Answers the probe prompts with each checkpoint, so the run shows how the answers change."""

    def __init__(self, run_dir: Path, prompts: list[str], max_new_tokens: int, events: EventLog, sharded: bool = False):
        self.run_dir, self.prompts, self.max_new_tokens, self.events = run_dir, prompts, max_new_tokens, events
        self.sharded = sharded

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        # Under FSDP the untrained model answers once it is sharded (a 16-bit model loads into host memory).
        if self.sharded and state.global_step == 0 and self._answer(state, model, processing_class):
            self.events.message("The probe prompts were answered by the untrained model (step 0).")

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self._answer(state, model, processing_class):
            self.events.message(f"Checkpoint at step {state.global_step} saved; probe prompts answered.")

    def _answer(self, state, model, tokenizer) -> bool:
        """Rank 0 records the answers (True); a sharded model's forward gathers from every process, so
        under FSDP the others generate along."""
        if self.prompts and state.is_world_process_zero:
            probes.record(self.run_dir, state.global_step, model, tokenizer, self.prompts, self.max_new_tokens)
            return True
        if self.prompts and self.sharded:
            probes.answer(model, tokenizer, self.prompts, self.max_new_tokens)
        return False
