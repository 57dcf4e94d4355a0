"""The run plan, shown before Start: what will be trained, whether it fits in memory, how long it takes.

Counts come from the same tokenisation the trainer uses. Memory is an estimate from the model's
shapes (read from its config, no weights loaded): weights, adapter with gradients and optimizer state,
activations of the largest batch, the logits, and the runtime itself; the verdict compares it with the
free memory of the device (GPU memory, or the host's available memory). Time comes with every plan,
from this machine's measured speed where one is known, else from a stated estimate (engine/train/estimate.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.files import read_json, write_json
from engine.hardware import GiB, Hardware, detect
from engine.i18n import Message, joined, msg
from engine.train import checkpointing, distributed, estimate
from engine.train.advice import advice_notes
from engine.train.backend import Settings, choose
from engine.train.config import EMBEDDING_MODULES, ConfigError, RunConfig, with_changes
from engine.train.pairs import plan_note
from engine.workspace import Workspace

GB = 1e9
SPEED_FILE = ".speeds.json"
PROBE_S_PER_TOKEN = 0.06  # a token of the default model on a CPU (bench/RESULTS.md, "The app and chat on the CPU")
FITS, TIGHT, WONT_FIT = "fits", "tight", "will not fit"


@dataclass
class Shape:
    """What the memory estimate needs to know about a model, from its config alone."""

    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    linear: dict[str, tuple[int, int]]  # LoRA target name -> (in, out) features, per layer
    embedding_parameters: int  # embed_tokens + lm_head (counted once when tied)
    model_type: str | None = None  # the config's, which picks the family's LoRA targets


@dataclass
class Memory:
    weights: float  # with, on a CPU with bf16 autocast, the bf16 copies autocast keeps during a step
    adapter: float  # trainable parameters with their gradients and optimizer state
    activations: float
    logits: float
    slack: float  # memory the allocator keeps after batches of changing sizes
    runtime: float  # the CUDA context, or the Python process with its libraries
    # Under FSDP, a 4-bit model's whole quantized weights on each GPU while it loads: transformers 5.17
    # quantizes on the GPU, before the model is sharded.
    loading: float = 0.0

    @property
    def total(self) -> float:
        training = self.weights + self.adapter + self.activations + self.logits + self.slack + self.runtime
        return max(training, self.loading + self.runtime)


@dataclass
class Sharding:
    """How a run of several processes holds the model: DDP (a whole copy each) or FSDP (split across them)."""

    strategy: str  # ddp | fsdp
    shards: int  # the processes the weights are split across (1 under DDP)
    words: str  # which, and why, for the plan
    problem: str | None = None  # why it cannot start: the model fits neither way


@dataclass
class Fix:
    label: str
    changes: dict[str, Any]  # dotted config paths -> new values
    memory_gb: float


@dataclass
class Plan:
    config: RunConfig
    settings: Settings
    problems: list[str]  # settings this machine cannot honour; Start fails until they change
    notes: list[str]  # the tutorial's advice where the config strays from it
    conversations: int
    rows: int
    truncated: int
    dropped: int
    tokens_per_epoch: int
    trained_tokens_per_epoch: int
    longest: int
    steps_per_epoch: int
    total_steps: int
    epochs: float
    memory: Memory
    free_bytes: int
    verdict: str
    fixes: list[Fix] = field(default_factory=list)
    tokens_per_s: float | None = None
    speed_source: str | None = None
    speed_measured: bool = False  # on this machine; otherwise the time is an assumption, and says so
    measured_peak_gb: float | None = None  # the peak memory of the same measured steps
    seconds: float | None = None
    processes: int = 1  # training processes (one a GPU)
    sharding: Sharding | None = None  # with several processes: DDP or FSDP, and why
    checkpointing: checkpointing.Choice | None = None  # the layers checkpointed and the batch, on a GPU

    @property
    def truncated_share(self) -> float:
        return self.truncated / self.conversations if self.conversations else 0.0

    def summary(self) -> Message:
        """The plan in a few Markdown lines, for the Train tab and the command line."""
        m = self.memory
        lines = [
            msg("**Data:** {rows} conversations ({dropped} left out), {tokens:,} tokens an epoch, {trained:,} of them "
                "learned; {truncated} ({share:.0f}%) cut at {length} tokens (longest {longest}).", rows=self.rows,
                dropped=self.dropped, tokens=self.tokens_per_epoch, trained=self.trained_tokens_per_epoch,
                truncated=self.truncated, share=100 * self.truncated_share, length=self.config.model.max_seq_length,
                longest=self.longest),
            msg("**Steps:** {steps} ({per_epoch} an epoch x {epochs:g} epochs), {batch}.",
                steps=self.total_steps, per_epoch=self.steps_per_epoch, epochs=self.epochs,
                batch=distributed.batch_note(self.config.train.batch_size, self.config.train.gradient_accumulation,
                                             self.processes)),
            msg("**Memory:** about {need:.1f} GiB of {free:.1f} GiB free ({device}): **{verdict}**. Weights "
                "{weights:.2f}, adapter and optimizer {adapter:.2f}, activations {activations:.2f}, logits "
                "{logits:.2f}, allocator slack {slack:.2f}, runtime {runtime:.2f} GiB.", need=m.total / GiB,
                free=self.free_bytes / GiB, device=self.settings.device, verdict=msg(self.verdict),
                weights=m.weights / GiB, adapter=m.adapter / GiB, activations=m.activations / GiB,
                logits=m.logits / GiB, slack=m.slack / GiB, runtime=m.runtime / GiB),
        ]
        if self.measured_peak_gb:  # recorded in GB (1e9 bytes) by the training callbacks
            lines[-1] = joined([lines[-1], msg("Measured peak of the same settings: {peak:.1f} GiB.",
                                               peak=self.measured_peak_gb * GB / GiB)])
        if self.seconds is not None:
            lines.append(msg("**Time:** about {time} at {speed:.0f} tokens/s ({source}).", time=duration(self.seconds),
                             speed=self.tokens_per_s, source=self.speed_source) if self.processes == 1 else
                         msg("**Time:** about {time} at {speed:.0f} tokens/s ({source}), {count} processes assumed "
                             "{count} times as fast as one (not measured here).", time=duration(self.seconds),
                             speed=self.tokens_per_s, source=self.speed_source, count=self.processes))
        if self.sharding is not None and self.sharding.strategy == "fsdp":
            lines.append(msg("**Processes:** {count} (torchrun, FSDP), the model split across their GPUs; the memory "
                             "above is each GPU's share; rank 0 writes the run folder. {why}", count=self.processes,
                             why=self.sharding.words))
        elif self.sharding is not None:
            lines.append(msg("**Processes:** {count} (torchrun, DDP), each holding the memory above on its own GPU; "
                             "rank 0 writes the run folder. {why}", count=self.processes, why=self.sharding.words))
        lines.append(msg("**Backend:** {backend}.", backend=self.settings.describe()))
        if self.checkpointing and self.settings.gradient_checkpointing:
            lines.append(msg("**Checkpointing:** {choice}.", choice=self.checkpointing.words()))
        lines += [msg("**Cannot start:** {problem}", problem=p) for p in self.problems]
        lines += [msg("*Advice:* {note}", note=n) for n in self.notes]
        return joined(lines, "  \n")


def make(config: RunConfig, workspace: Workspace, hw: Hardware | None = None) -> Plan:
    from engine.data import load_conversations
    from engine.data.store import token_cache
    from engine.chat.templates import prepare_tokenizer
    from engine.train.tokens import split, tokenize

    hw = hw or detect()
    settings, problems = choose(config, hw)
    tokenizer, shape = tokenizer_and_shape(config, workspace)
    if missing := [m for m in config.lora.targets(shape.model_type) if m not in shape.linear and m not in EMBEDDING_MODULES]:
        problems = [*problems, msg("lora.target_modules: this model has no layers named {missing}; its layers are "
                                   "{layers}. Tick all seven for the model's own, or only layers it has.",
                                   missing=", ".join(missing), layers=", ".join(shape.linear))]
    prepare_tokenizer(tokenizer, template_choice=config.template)
    train_rows, _ = split(load_conversations(config.dataset, workspace=workspace), config.train)
    data = tokenize(tokenizer, train_rows, config.model.max_seq_length, config.train.assistant_only_loss,
                    token_cache(workspace))
    t = config.train
    rows = math.ceil(data.tokens / config.model.max_seq_length) if t.batching == "packed" else len(data.rows)
    gpus = distributed.visible_gpus()
    count = distributed.processes(t.processes, gpus)
    batches = max(1, math.ceil(rows / (t.batch_size * count)))  # each process takes its share of the rows
    per_epoch = max(1, math.ceil(batches / distributed.accumulation(t.gradient_accumulation, count)))
    total = t.max_steps or math.ceil(t.epochs * per_epoch)
    free = hw.free_bytes()
    if settings.device == "cuda":
        free = checkpointing.budget(free)
    shard = sharding(config, settings, shape, count, free) if count > 1 else None
    if shard is not None:
        settings = replace(settings, sharded=shard.strategy == "fsdp")
        problems = problems + ([shard.problem] if shard.problem else [])
    shards = shard.shards if shard else 1
    choice = None
    if settings.device == "cuda":
        choice = checkpointing.choose(config, settings, shape, data.lengths, free, shards, per_batch=count == 1)
        settings, free = choice.settings, int(choice.budget_bytes)
    sized = config if choice is None else with_changes(config, {"train.batch_size": choice.batch_size,
                                                              "train.gradient_accumulation": choice.gradient_accumulation})
    memory = estimate_memory(shape, sized, settings, largest_batch_tokens(data.lengths, sized), shards)
    plan = Plan(
        config=config, settings=settings, problems=problems, notes=advice_notes(config, len(data.rows)),
        conversations=data.conversations, rows=len(data.rows), truncated=data.truncated, dropped=data.dropped,
        tokens_per_epoch=data.tokens, trained_tokens_per_epoch=data.trained_tokens, longest=data.longest,
        steps_per_epoch=per_epoch, total_steps=total, epochs=total / per_epoch,
        memory=memory, free_bytes=free, verdict=verdict(memory.total, free), checkpointing=choice, sharding=shard,
    )
    if config.method != "supervised":
        plan.notes.insert(0, plan_note(workspace, config))
    if plan.verdict != FITS:
        plan.fixes = _fixes(config, settings, hw, shape, data.lengths, count, shards)
    speed = speed_of(config, settings, workspace, shape.parameters)
    plan.tokens_per_s, plan.speed_source, plan.speed_measured = speed.tokens_per_s, speed.source, speed.measured
    plan.measured_peak_gb = speed.peak_memory_gb
    plan.processes = count
    plan.seconds = data.tokens * plan.epochs / (speed.tokens_per_s * count) + _probe_seconds(config, total)
    return plan


def speed_of(config: RunConfig, settings: Settings, workspace: Workspace, parameters: int) -> estimate.Speed:
    """The best speed known for these settings: measured with them, from earlier runs here, or assumed."""
    known = known_speed(workspace, config, settings)
    if known:
        return estimate.Speed(known["tokens_per_s"], "from " + known["source"], True, known.get("peak_memory_gb"))
    return (estimate.from_runs(workspace, config, settings, parameters,
                               lambda other: tokenizer_and_shape(other, workspace)[1].parameters)
            or estimate.assumed(settings, parameters))


def verdict(need: float, free: float) -> str:
    return FITS if need <= 0.8 * free else TIGHT if need <= free else WONT_FIT


def sharding(config: RunConfig, settings: Settings, shape: Shape, count: int, free: float) -> Sharding:
    """DDP or FSDP for `count` processes with `free` bytes a GPU, from the model's own memory: the choice
    sees a full batch at the maximum length, so the plan and every worker (which has not read the data
    when it must choose, before the model loads) make the same one. 'auto' takes DDP where a whole copy
    fits within the plan's margin, else FSDP; a model that fits neither way cannot start."""
    batch = config.train.batch_size * config.model.max_seq_length
    whole = estimate_memory(shape, config, settings, batch).total
    split = estimate_memory(shape, config, settings, batch, count).total
    asked = config.train.sharding
    if settings.device != "cuda":  # accelerate shards only across GPUs (backend.choose refuses 'fsdp' here)
        return Sharding("ddp", 1, msg("DDP: on {device} several processes train with DDP only.",
                                      device=settings.device))
    sizes = dict(whole=whole / GiB, split=split / GiB, free=free / GiB, count=count)
    if asked == "ddp" or (asked == "auto" and verdict(whole, free) == FITS):
        words = msg("DDP: a whole copy (about {whole:.1f} GiB a GPU) fits each GPU's {free:.1f} GiB, and DDP is "
                    "the faster way." if asked == "auto" else
                    "DDP (your setting): a whole copy needs about {whole:.1f} GiB a GPU of {free:.1f} GiB; FSDP "
                    "across {count} would need about {split:.1f} GiB.", **sizes)
        strategy = Sharding("ddp", 1, words)
    else:
        words = msg("FSDP: a whole copy needs about {whole:.1f} GiB a GPU, more than fits in {free:.1f} GiB; split "
                    "across {count} GPUs, about {split:.1f} GiB each." if asked == "auto" else
                    "FSDP (your setting): split across {count} GPUs, about {split:.1f} GiB each of {free:.1f} GiB "
                    "(a whole copy: about {whole:.1f} GiB).", **sizes)
        strategy = Sharding("fsdp", count, words)
    if min(whole, split) > free:
        strategy.problem = msg("train.sharding: the model does not fit these {count} GPUs either way: a whole copy "
                               "needs about {whole:.1f} GiB a GPU (DDP), split across them about {split:.1f} GiB "
                               "(FSDP), and each has {free:.1f} GiB. Load it in 4-bit, use more GPUs, a shorter "
                               "maximum length or a smaller model.", **sizes)
        if config.model.load_in_4bit:
            strategy.problem = joined([strategy.problem, msg(
                "A 4-bit model loads whole onto each GPU before it is split (transformers quantizes on the GPU).")])
    elif strategy.strategy == "fsdp" and config.method != "supervised":
        strategy.problem = msg("train.sharding: FSDP trains supervised runs only; a {method} run needs a whole copy "
                               "of the model on each GPU (DDP) or one process.", method=config.method.upper())
    elif strategy.strategy == "fsdp" and settings.backend == "unsloth" and asked == "auto":
        strategy.problem = msg("train.sharding: this run needs FSDP, and unsloth must know it before it loads: set "
                               "train.sharding to 'fsdp'.")
    return strategy


def duration(seconds: float) -> Message:
    if seconds < 90:
        return msg("{n:.0f} s", n=seconds)
    if seconds < 5400:
        return msg("{n:.0f} min", n=seconds / 60)
    return msg("{n:.1f} h", n=seconds / 3600)


# ---- memory --------------------------------------------------------------------------------------

def estimate_memory(shape: Shape, config: RunConfig, settings: Settings, batch_tokens: int,
                    shards: int = 1) -> Memory:
    """One process's memory; with `shards` > 1, under FSDP split across that many processes."""
    lora = config.lora
    weight_bytes = 4 if settings.weights_dtype == "float32" else 2
    if config.model.load_in_4bit:  # nf4 with double quantisation; embeddings and norms stay 16-bit
        embedding = shape.embedding_parameters * 2
        weights = (shape.parameters - shape.embedding_parameters) * 0.53 + embedding
    else:
        embedding = shape.embedding_parameters * weight_bytes
        weights = shape.parameters * weight_bytes
    targets = lora.targets(shape.model_type)
    trainable = sum(lora.r * (i + o) for name, (i, o) in shape.linear.items() if name in targets)
    trainable *= shape.layers
    full = shape.embedding_parameters if set(EMBEDDING_MODULES) & set(targets) else 0
    optimizer_bytes = 2 if "8bit" in settings.optimizer else 8
    adapter = (trainable + full) * (4 + 4 + optimizer_bytes)
    loading = 0.0
    if shards > 1:
        # Each process keeps its share of every decoder layer, and gathers a whole layer while it computes
        # it and the next one ahead of time; the embeddings and LM head belong to the outermost unit, which
        # FSDP2 keeps gathered from the forward to the end of the backward.
        layers = weights - embedding
        loading = weights if config.model.load_in_4bit else 0.0
        weights = layers / shards + 2 * layers / shape.layers + embedding
        adapter /= shards
    if settings.device != "cuda" and settings.mixed_precision == "bf16":
        weights += shape.parameters * 2
    # Stored activations per token and layer: the inputs and outputs of attention and MLP, and a
    # dropped-out copy of each LoRA input; float32 unless the weights themselves are 16-bit.
    act_bytes = 2 if weight_bytes == 2 or config.model.load_in_4bit else 4
    per_token_layer = (14 * shape.hidden + 5 * shape.intermediate) * act_bytes
    checkpointed = 0 if not settings.gradient_checkpointing else shape.layers \
        if settings.checkpointed_layers is None else min(settings.checkpointed_layers, shape.layers)
    # A checkpointed layer keeps only its input, and one is recomputed at a time; unsloth's checkpointing
    # moves the kept inputs to host memory (unsloth_zoo's offloaded checkpointer).
    kept = 0 if settings.backend == "unsloth" else checkpointed * shape.hidden * act_bytes
    recomputed = per_token_layer if checkpointed else 0
    # The other layers keep everything; unsloth's fused kernels kept 0.46-0.47 of it on an H200 (bench/RESULTS.md).
    stored = (shape.layers - checkpointed) * per_token_layer * (0.5 if settings.backend == "unsloth" else 1)
    activations = batch_tokens * (kept + recomputed + stored)
    # The LM head's logits in float32 (with their gradient); the fused GPU loss computes them in chunks.
    logits = 0.0 if settings.device == "cuda" else batch_tokens * shape.vocab * 4 * 2
    # On a CPU the peak grows over the epochs of padding-free batches, as the host allocator keeps blocks
    # of every size it has seen (the growth measured: bench/RESULTS.md).
    slack = (activations + logits) * (0.25 if settings.device == "cuda" else 0.75)
    runtime = 0.6 * GB
    return Memory(weights, adapter, activations, logits, slack, runtime, loading)


def largest_batch_tokens(lengths: list[int], config: RunConfig) -> int:
    t, longest = config.train, max(lengths, default=0)
    if t.batching == "packed":
        return t.batch_size * config.model.max_seq_length
    if t.batching == "padded":
        return t.batch_size * longest
    return sum(sorted(lengths, reverse=True)[: t.batch_size])


def _fixes(config: RunConfig, settings: Settings, hw: Hardware, shape: Shape, lengths: list[int], count: int = 1,
           shards: int = 1) -> list[Fix]:
    options: list[tuple[Message, dict]] = []
    if count > 1 and shards == 1 and settings.device == "cuda":
        options.append((msg("Split the model across the {count} GPUs (FSDP)", count=count), {"train.sharding": "fsdp"}))
    if hw.can_4bit and not config.model.load_in_4bit:
        options.append((msg("Load the model in 4-bit (QLoRA)"), {"model.load_in_4bit": True}))
    if not settings.gradient_checkpointing:
        options.append((msg("Turn on gradient checkpointing"), {"lora.gradient_checkpointing": "on"}))
    t = config.train
    if t.batch_size > 1:
        smaller = max(1, t.batch_size // 2)
        options.append((msg("Batch {batch} with accumulation {accumulation} (same effective batch)", batch=smaller,
                            accumulation=t.gradient_accumulation * 2),
                        {"train.batch_size": smaller, "train.gradient_accumulation": t.gradient_accumulation * 2}))
    if config.model.max_seq_length > 256:
        shorter = config.model.max_seq_length // 2
        cut = sum(1 for n in lengths if n > shorter)
        options.append((msg("Maximum length {length} (cuts {cut} conversations)", length=shorter, cut=cut),
                        {"model.max_seq_length": shorter}))
    fixes = []
    for label, changes in options:
        changed = with_changes(config, changes)
        changed_settings, _ = choose(changed, hw)
        split = count if changed.train.sharding == "fsdp" else shards
        changed_settings = replace(changed_settings, sharded=split > 1)
        cut = [min(n, changed.model.max_seq_length) for n in lengths]
        need = estimate_memory(shape, changed, changed_settings, largest_batch_tokens(cut, changed), split).total
        fixes.append(Fix(msg("{label}: about {need:.1f} GiB", label=label, need=need / GiB), changes, need / GB))
    return fixes


# ---- speed ---------------------------------------------------------------------------------------

def speed_key(config: RunConfig, settings: Settings) -> str:
    m, lora, t = config.model, config.lora, config.train
    key = "|".join(str(x) for x in (
        m.name_or_path, settings.device, settings.weights_dtype, settings.mixed_precision, m.load_in_4bit,
        settings.gradient_checkpointing, t.batching, t.batch_size, lora.r, len(lora.target_modules),
        *(() if config.method == "supervised" else (config.method,))))  # preference steps compute more
    partly = settings.gradient_checkpointing and settings.checkpointed_layers is not None
    key = key + f"|{settings.checkpointed_layers}" if partly else key
    return key + "|fsdp" if settings.sharded else key  # gathering the shards takes part of each step


def known_speed(workspace: Workspace, config: RunConfig, settings: Settings) -> dict | None:
    return (read_json(workspace.runs / SPEED_FILE, {}) or {}).get(speed_key(config, settings))


def record_speed(workspace: Workspace, config: RunConfig, settings: Settings, tokens_per_s: float,
                 peak_memory_gb: float, source: str) -> None:
    speeds = read_json(workspace.runs / SPEED_FILE, {}) or {}
    speeds[speed_key(config, settings)] = {"tokens_per_s": round(tokens_per_s, 1), "peak_memory_gb": peak_memory_gb,
                                           "source": source, "time": time.time()}
    write_json(workspace.runs / SPEED_FILE, speeds)


def measure(config: RunConfig, workspace: Workspace, steps: int = 3, timeout: float = 600) -> dict:
    """Time a few real training steps in a worker process (nothing is saved) and remember the speed."""
    from engine.train.runs import ensure_idle

    ensure_idle(workspace)  # the measurement takes the training lock too
    with tempfile.TemporaryDirectory(prefix="measure-", dir=workspace.root) as tmp:
        (Path(tmp) / "run.yaml").write_text(config.to_yaml(), encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "engine", "train", tmp, "--time-steps", str(steps), "--workspace",
                 str(workspace.root)],
                capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[2],
            )
        except subprocess.TimeoutExpired:
            raise ConfigError(msg("Measuring {steps} steps took more than {minutes:.0f} minutes: this setup is very "
                                  "slow here. Try a smaller batch, a shorter maximum length or a smaller model.",
                                  steps=steps, minutes=timeout / 60)) from None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
            raise ConfigError(errors[-1][7:] if errors else msg("Measuring failed: {detail}",
                                                                  detail=done.stderr.strip()[-500:]))
        return json.loads(done.stdout.strip().splitlines()[-1])


def _probe_seconds(config: RunConfig, total_steps: int) -> float:
    """Answering the probe prompts at each save, at PROBE_S_PER_TOKEN (the default model on a CPU)."""
    saves = total_steps // config.train.save_steps + 2
    return saves * config.probes.max_new_tokens * PROBE_S_PER_TOKEN * (1 if config.probes.prompts else 0)


# ---- the model's shape ---------------------------------------------------------------------------

def tokenizer_and_shape(config: RunConfig, workspace: Workspace):
    """The model's tokenizer and its Shape, from its config files alone (no weights are read)."""
    from transformers import AutoConfig

    from engine.chat.templates import load_tokenizer

    source = _model_source(config.model.name_or_path, workspace)
    trust = config.model.trust_remote_code
    try:
        tokenizer = load_tokenizer(source, None, trust_remote_code=trust)
        model_config = AutoConfig.from_pretrained(source, trust_remote_code=trust)
    except (OSError, ValueError) as e:
        raise ConfigError(msg("Could not read the model '{model}' ({detail}). Check its name or folder; a Hub model "
                              "needs the internet the first time.", model=config.model.name_or_path, detail=e)) from None
    return tokenizer, shape_of(model_config, trust)


def shape_of(model_config, trust: bool = False) -> Shape:
    """The Shape of a model of this transformers config, built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, trust_remote_code=trust)
    text = model_config.get_text_config()
    linear: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and leaf not in linear and leaf != "lm_head":
            linear[leaf] = (module.in_features, module.out_features)
    embeddings = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m
                  for p in m.parameters()}
    return Shape(
        parameters=sum(p.numel() for p in model.parameters()), layers=text.num_hidden_layers,
        hidden=text.hidden_size, intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        vocab=text.vocab_size, linear=linear, embedding_parameters=sum(embeddings.values()),
        model_type=model_config.model_type,
    )


def _model_source(spec: str, workspace: Workspace) -> str:
    """A local folder where there is one (the default model is converted on first use), else the Hub id:
    the plan reads only the config and tokenizer files, never the weights."""
    from engine.chat.models import HUB_ID, resolve_model

    if HUB_ID.match(spec) and not Path(spec).expanduser().is_dir() and not (workspace.models / spec).is_dir():
        return spec
    return str(resolve_model(spec, workspace))
