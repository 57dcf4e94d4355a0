"""One training run, in its own process: `python -m engine train RUN_DIR`.

Reads top to bottom: config and machine, model + LoRA, data, probes, trainer, train, adapter. A
folder holding only run.yaml starts the run; one with checkpoints resumes from the latest. SIGTERM
(and Ctrl-C) is Stop: a checkpoint and the adapter are saved at the end of the current step.
Everything the outside world learns goes through the run folder (status.json, events.jsonl,
probes.jsonl); the libraries are imported only once the status says the worker lives. Under torchrun
(engine/train/distributed.py) every process runs this; rank 0 alone holds the locks and writes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

from engine.errors import plain
from engine.files import atomic_dir
from engine.i18n import joined, msg
from engine.train import distributed, line, runs
from engine.train.advice import memory_advice
from engine.train.config import ConfigError
from engine.train.runs import EventLog, update_status
from engine.workspace import Workspace


def main(run_dir: Path, workspace: Workspace | None = None) -> int:
    """Train the run in `run_dir`, a folder anywhere; its workspace (models, data sets, the training lock)
    is the one given, else $WORKBENCH_HOME, else ./workspace."""
    run_dir = Path(run_dir).resolve()
    workspace = workspace or Workspace.from_env()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _: _request_stop(run_dir, stop, signum))
    if not distributed.is_main():  # a follower: trains its share, writes nothing; torchrun reports its failure
        train(run_dir, workspace, stop)
        return 0
    try:
        with runs.worker_locks(run_dir, workspace):
            try:
                if runs.read_status(run_dir).state == "stopping":  # Stop was pressed while it was queued
                    update_status(run_dir, state="stopped", ended=runs.now(), pid=None)
                    return 0
                update_status(run_dir, state="running", pid=os.getpid(), started=runs.now(), ended=None,
                              error=None, advice=None)
                state = train(run_dir, workspace, stop)
                update_status(run_dir, state=state, ended=runs.now(), pid=None)
                return 0
            except Exception as e:  # recorded while the run's lock is held, so no reader takes it for a crash
                return _failed(run_dir, e)
    except Exception as e:  # the locks could not be taken
        return _failed(run_dir, e)
    finally:
        line.start_next(workspace)  # the next run in line, if one waits


def _failed(run_dir: Path, e: Exception) -> int:
    """Every ending is recorded in the run folder."""
    error, advice = _explain(e, run_dir)
    traceback.print_exc()  # into worker.log
    EventLog(run_dir).message(f"{error} {advice or ''}".strip(), level="error")
    update_status(run_dir, state="failed", ended=runs.now(), pid=None, error=error, advice=advice)
    return 1


def train(run_dir: Path, workspace: Workspace, stop: threading.Event, measure_steps: int | None = None) -> str:
    """The recipe. Returns the final state (completed or stopped). With `measure_steps` it only times
    that many steps for the plan: nothing is saved."""
    # Hardware first: on a CUDA machine detection imports unsloth, which must patch transformers and trl
    # before they load.
    from engine.hardware import detect

    began, startup = time.perf_counter(), {}  # seconds from here to each stage before step 1, for the events
    run = runs.Run(run_dir.name, run_dir, runs.read_status(run_dir))
    if distributed.world() > 1 and run.config.train.sharding == "fsdp":
        # unsloth's own FSDP2 path (docs/training.md), set before unsloth is imported; not run here
        os.environ.setdefault("UNSLOTH_FSDP2", "1")
    hw = detect()
    from datasets import Dataset

    from engine.data import load_conversations
    from engine.data.store import token_cache
    from engine.chat.models import resolve_model
    from engine.chat.templates import prepare_tokenizer
    from engine.train import backend, checkpointing, methods, plan, probes
    from engine.train.callbacks import ProbeCallback, ProgressCallback, StopCallback
    from engine.train.tokens import split, tokenize
    from engine.train.trainer import StartupCallback, WorkbenchTrainer, training_args

    # 1. The config, and what this machine makes of it.
    config = run.config
    events = EventLog(run_dir)
    main = distributed.is_main()
    if not main:
        events = runs.QuietLog(run_dir)
    settings = backend.resolve(config, hw)
    model_path = resolve_model(config.model.name_or_path, workspace, config.model.trust_remote_code, anywhere=True)
    shards = 1
    if distributed.world() > 1:  # DDP or FSDP, as the plan chose, before the model loads
        from transformers import AutoConfig

        free = checkpointing.budget(_gpu_memory()) if settings.device == "cuda" else hw.free_bytes()
        trust = config.model.trust_remote_code
        shard = plan.sharding(config, settings, plan.shape_of(AutoConfig.from_pretrained(
            model_path, trust_remote_code=trust), trust), distributed.world(), free)
        if shard.problem:
            raise ConfigError(shard.problem)
        settings, shards = dataclasses.replace(settings, sharded=shard.strategy == "fsdp"), shard.shards
        events.message(shard.words)
    if not measure_steps and main:
        update_status(run_dir, backend=settings.as_dict(), processes=distributed.world())
    events.message(f"Training with {settings.describe()} on {hw.name}"
                   + (f", {distributed.world()} processes." if distributed.world() > 1 else "."))
    if slow := backend.slow_attention(config, settings):
        events.message(slow, level="warning")
    if cap := checkpointing.memory_cap() if settings.device == "cuda" else None:
        import torch

        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / torch.cuda.get_device_properties(0).total_memory))
    startup["libraries"] = time.perf_counter() - began

    # 2. The model with a fresh LoRA adapter, and the tokenizer with its training template.
    start_adapter = methods.starting_adapter(workspace, config)
    model, tokenizer = backend.load(config, settings, model_path, start_adapter)
    tokenizer = prepare_tokenizer(tokenizer, template_choice=config.template)
    trainable, total = model.get_nb_trainable_parameters()
    events.message(f"Loaded {model_path.name}: {trainable:,} of {total:,} parameters train "
                   f"({100 * trainable / total:.2f}%).")
    startup["model"] = time.perf_counter() - began
    if start_adapter is not None:
        events.message(f"Continuing the adapter of run {config.preference.start_from} (its LoRA settings).")
    if config.method != "supervised":
        return methods.train_preference(run, workspace, stop, settings, model, tokenizer, events, measure_steps)

    # 3. The data set, rendered with that template and cut at the maximum length.
    train_rows, eval_rows = split(load_conversations(config.dataset, workspace=workspace), config.train)
    cache = token_cache(workspace)
    data = tokenize(tokenizer, train_rows, config.model.max_seq_length, config.train.assistant_only_loss, cache)
    if not data.rows:
        raise ConfigError("No conversation has an assistant reply left to learn from at this maximum length; "
                          "check the data set or raise model.max_seq_length.")
    events.message(f"{len(data.rows)} conversations, {data.tokens:,} tokens an epoch ({data.trained_tokens:,} "
                   f"learned); {data.truncated} cut at {config.model.max_seq_length} tokens, {data.dropped} left out.")
    eval_data = tokenize(tokenizer, eval_rows, config.model.max_seq_length, config.train.assistant_only_loss, cache)
    startup["data"] = time.perf_counter() - began

    # The layers checkpointed and the batch (the plan's choice on a GPU: engine/train/checkpointing.py).
    choice = None
    if settings.device == "cuda":
        import torch
        from transformers import AutoConfig

        free, held = torch.cuda.mem_get_info()[0], torch.cuda.memory_reserved()
        choice = checkpointing.choose(config, settings, plan.shape_of(AutoConfig.from_pretrained(model_path)),
                                      data.lengths, checkpointing.budget(free + held), shards,
                                      per_batch=distributed.world() == 1)
        settings = choice.settings
        config = config.model_copy(update={"train": config.train.model_copy(update={
            "batch_size": choice.batch_size, "gradient_accumulation": choice.gradient_accumulation})})
        events.message(msg("Checkpointing: {said}.", said=choice.words()))
        if not measure_steps:
            update_status(run_dir, backend=settings.as_dict())
    backend.checkpoint_layers(model, settings)

    # 4. The probe prompts, answered by the untrained model: what the run is compared with.
    if config.probes.prompts and not measure_steps and main and not settings.sharded \
            and 0 not in probes.recorded_steps(run_dir):
        probes.record(run_dir, 0, model, tokenizer, config.probes.prompts, config.probes.max_new_tokens)
        events.message("The probe prompts were answered by the untrained model (step 0).")

    # 5. trl's SFTTrainer: assistant-only loss, batches padding-free (or padded, or packed).
    args = training_args(config, settings, run_dir / "checkpoints", measure_steps, evaluate=bool(eval_data.rows))
    trainer = WorkbenchTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_list(data.rows),
        eval_dataset=Dataset.from_list(eval_data.rows) if eval_data.rows else None,
        callbacks=[  # in this order: the probes answer before the progress clock restarts after a save
            ProbeCallback(run_dir, config.probes.prompts, config.probes.max_new_tokens, events,
                          settings.sharded and not measure_steps),
            ProgressCallback(events, settings.device),
            StopCallback(stop),
            StartupCallback(events, began, startup),
        ],
        checkpointing=choice,
    )
    startup["trainer"] = time.perf_counter() - began

    # 6. Train, from the latest checkpoint where there is one.
    if stop.is_set():
        return "stopped"
    resume_from = None if measure_steps else run.latest_checkpoint
    if resume_from:
        events.message(f"Resuming from {resume_from.name}.")
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if trainer.batches_by_layers:
        events.message(msg("Checkpointed layers per batch (layers: batches): {counts}.", counts=", ".join(
            f"{k}: {n}" for k, n in sorted(trainer.batches_by_layers.items()))))
    steps = [e for e in events.read() if e.get("type") == "step"]
    rates = [e["tokens_per_s"] for e in steps if e.get("tokens_per_s")]
    if rates and main:
        source = "a few measured steps" if measure_steps else f"run {run_dir.name}"
        plan.record_speed(workspace, config, settings, statistics.median(rates),
                          max(e["peak_memory_gb"] for e in steps), source)
    if measure_steps:
        return "completed"

    # 7. The adapter, with the tokenizer and the exact chat template it was trained with. Under FSDP every
    # process gives its shards, and rank 0 gets the whole state to save.
    whole = trainer.accelerator.get_state_dict(trainer.model) if settings.sharded else None
    if main:
        with atomic_dir(run_dir / "adapter") as tmp:
            trainer.model.save_pretrained(tmp, state_dict=whole)  # None: the model's own
            tokenizer.save_pretrained(tmp)
    state = "stopped" if stop.is_set() else "completed"
    events.message(f"Training {state} at step {trainer.state.global_step}; the adapter is saved.")
    return state


def _gpu_memory() -> int:
    import torch

    return torch.cuda.mem_get_info()[0]


def _explain(e: Exception, run_dir: Path) -> tuple[str, str | None]:
    """(error, advice) as sentences that say only what is true; the class and traceback go to the log."""
    run = runs.Run(run_dir.name, run_dir, runs.read_status(run_dir))
    # torch raises OutOfMemoryError on a GPU, and a RuntimeError from its CPU allocator on the host
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e):
        backend = run.status.backend
        return msg("Training ran out of memory."), memory_advice(run.config, bool(backend and backend.device == "cuda"))
    if isinstance(e, ValueError):  # the engine's messages are written for people
        return (e.args[0] if e.args and isinstance(e.args[0], str) else str(e)), None
    checkpoint = run.latest_checkpoint
    resume = (msg("Resume continues from the last checkpoint ({name}).", name=checkpoint.name) if checkpoint
              else msg("No checkpoint was saved: Duplicate its config into the form and Start it again."))
    if distributed.world() > 1 and distributed.lost_peer(e):
        return (msg("One of the run's {count} training processes ended unexpectedly (it was killed, or ran out of "
                    "memory), so the others stopped too.", count=distributed.world()),
                joined([_log_place(run.log_file), resume]))
    if said := plain(e):
        return said, resume
    detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    error = msg("Training failed: {detail}.", detail=detail.rstrip(".")) if detail else \
        msg("Training failed with an unexpected error.")
    return error, joined([_log_place(run.log_file), resume])


def _log_place(log: Path) -> str:
    """Where this process's error output really goes: the run's worker.log when the app started it,
    else wherever the command was run (a terminal, or the file its output was sent to)."""
    try:
        out, here = os.fstat(sys.stderr.fileno()), log.stat()
        if (out.st_dev, out.st_ino) == (here.st_dev, here.st_ino):
            return msg("The full error is in {log}.", log=log)
    except (OSError, ValueError):  # no worker.log, or stderr is not a file
        pass
    return msg("The full error was printed in the output of the training command.")


def _request_stop(run_dir: Path, stop: threading.Event, signum: int) -> None:
    if stop.is_set():
        if signum == signal.SIGINT:  # a second Ctrl-C does not wait for the step to end
            raise KeyboardInterrupt
        return
    stop.set()
    if distributed.world() > 1 and signum == signal.SIGTERM:
        # The app wrote "stopping" before it signalled; torchrun's SIGTERM, when another rank died, is no Stop.
        return
    update_status(run_dir, state="stopping")
    EventLog(run_dir).message("Stop requested: saving a checkpoint and the adapter after this step.")
