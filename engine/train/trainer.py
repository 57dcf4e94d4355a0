"""trl's SFTTrainer and the arguments of a run, with a loss that also runs where Triton does not (CPU, Apple).

trl 1.15 (the newest unsloth accepts) computes every loss it offers (`loss_type` "nll" and "dft")
through a Triton "fused LM head", which crashes at the first step without Triton. Where it is
missing, the loss is plain torch: the LM head runs only on the positions whose next token is learned
(transformers' `logits_to_keep`), then cross-entropy, normalised exactly as trl does. It is faster
on a CPU than transformers' own loss on the full logits (bench/RESULTS.md, *The CPU loss*).
Token accuracy is kept, and logged through `log` as trl logs its own.

The real-token count behind tokens/s is this trainer's own: unsloth's trainer (on CUDA) does not log
trl's `num_tokens`, and transformers' `include_num_input_tokens_seen="non_padding"` counts a
padding-free batch as its tokens other than the pad token, which for SmolLM2 and other models whose
pad token is their end-of-turn token leaves out the end of every turn.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from engine.train import distributed
from engine.train.backend import Settings, set_checkpointed
from engine.train.checkpointing import Choice
from engine.train.config import RunConfig


def training_args(config: RunConfig, settings: Settings, output_dir: Path, measure_steps: int = 0,
                  evaluate: bool = False) -> SFTConfig:
    """trl's arguments for a run; with `measure_steps`, for timing that many steps (nothing saved)."""
    t = config.train
    return SFTConfig(
        **common_args(config, settings, output_dir, measure_steps, evaluate),
        # Rows come tokenized with their assistant_masks (engine.train.tokens), which trl applies by itself;
        # its own assistant-only switch would want {% generation %} markers that a family's template lacks.
        assistant_only_loss=False,
        padding_free=t.batching == "padding_free", packing=t.batching == "packed",
        max_length=config.model.max_seq_length if t.batching == "packed" else None,  # rows are cut already
        # Padded batches hold rows of similar length, so little of each is padding.
        train_sampling_strategy="group_by_length" if t.batching == "padded" else "random",
    )


def common_args(config: RunConfig, settings: Settings, output_dir: Path, measure_steps: int = 0,
                evaluate: bool = False) -> dict:
    """The arguments every trainer of a run shares (supervised and preference, engine/train/methods.py)."""
    t = config.train
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs, max_steps=(measure_steps + 1) if measure_steps else (t.max_steps or -1),
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=1 if measure_steps else distributed.accumulation(t.gradient_accumulation,
                                                                                      distributed.world()),
        learning_rate=t.learning_rate, lr_scheduler_type=t.scheduler, warmup_steps=t.warmup_ratio,
        optim=settings.optimizer, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        logging_steps=1 if measure_steps else t.logging_steps,
        save_strategy="no" if measure_steps else "steps", save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="steps" if evaluate and not measure_steps else "no", eval_steps=t.save_steps,
        seed=t.seed, report_to=[] if t.report_to == "none" or measure_steps else [t.report_to],
        use_cpu=settings.device == "cpu", bf16=settings.mixed_precision == "bf16",
        fp16=settings.mixed_precision == "fp16",
        gradient_checkpointing=False,  # the backend turns it on, for the layers chosen (backend.checkpoint_layers)
        disable_tqdm=True, dataloader_pin_memory=settings.device == "cuda",
        **(fsdp_args(settings) if settings.sharded else {}),
    )


def fsdp_args(settings: Settings) -> dict:
    """accelerate's FSDP2 through the trainer's arguments (transformers 5.17 `fsdp_config` keys): every
    decoder layer its own unit, its weights, LoRA parameters, gradients and optimizer state split across
    the processes (`reshard_after_forward`: a full shard). FSDP2 shards parameter by parameter, so frozen
    and trainable ones share a unit without FSDP1's `use_orig_params`; the trainer wraps by the model's
    own decoder layer class (its `_no_split_modules`, with peft's policy for the LoRA layers) and keeps
    4-bit weights in their storage dtype. Checkpointing stays the backend's (backend.checkpoint_layers)."""
    return dict(fsdp=True, fsdp_config={
        "version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_ram_efficient_loading": True, "state_dict_type": "FULL_STATE_DICT",  # rank 0 saves a whole adapter
    })


class WorkbenchTrainer(SFTTrainer):
    def __init__(self, *args, checkpointing: Choice | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The plan's per-batch choice (engine/train/checkpointing.py): each batch checkpoints the fewest layers
        # that hold it; the layers start as the largest batch needs them (backend.checkpoint_layers).
        self.checkpointing = checkpointing if checkpointing is not None and checkpointing.limits else None
        self.checkpointed = checkpointing.most if self.checkpointing else None
        self.batches_by_layers: dict[int, int] = {}  # checkpointed layers -> batches trained with them
        self.real_tokens = 0  # non-padding tokens trained on by this process: behind tokens/s in the events
        self.accuracies: dict[str, list[float]] = {"train": [], "eval": []}  # of the plain loss, since the last log

    def _load_optimizer_and_scheduler(self, checkpoint):
        # transformers 5.17 maps the optimizer state to `args.device` under DDP, which on the CPU is "cpu:0",
        # a place torch.load cannot restore to; the CPU is the one place it can be, so load it there.
        if checkpoint is None or self.args.device.type != "cpu" or self.args.world_size == 1:
            return super()._load_optimizer_and_scheduler(checkpoint)
        from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

        self.optimizer.load_state_dict(torch.load(Path(checkpoint) / OPTIMIZER_NAME, map_location="cpu", weights_only=True))
        self.lr_scheduler.load_state_dict(torch.load(Path(checkpoint) / SCHEDULER_NAME, weights_only=True))

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.checkpointing:
            k = self.checkpointing.layers_for(inputs["input_ids"].numel())  # padded and packed rows count whole
            if k != self.checkpointed:
                set_checkpointed(self.model, self.checkpointing.settings, k)
                self.checkpointed = k
            self.batches_by_layers[k] = self.batches_by_layers.get(k, 0) + 1
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training:
            # Padded batches carry an attention mask, padding-free ones only real tokens.
            self.real_tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs \
                else inputs["input_ids"].numel()
        if self.args.device.type == "cuda" and importlib.util.find_spec("triton") is not None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        return self._plain_loss(model, inputs, return_outputs, num_items_in_batch)

    def _plain_loss(self, model, inputs, return_outputs, num_items_in_batch):
        labels = inputs.pop("labels")
        next_labels = labels[:, 1:]
        learned = next_labels != -100
        keep = learned.any(dim=0).nonzero().squeeze(-1)  # positions whose next token is learned
        outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits.float()
        targets = next_labels[:, keep]
        total = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
        count = learned.sum() if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes

        with torch.no_grad():
            mask = targets != -100
            correct = (logits.argmax(-1) == targets)[mask].sum()
            mode = "train" if self.model.training else "eval"
            self.accuracies[mode].append((correct / mask.sum().clamp(min=1)).item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        mode = "train" if self.model.training else "eval"
        if accuracies := self.accuracies[mode]:
            key = "mean_token_accuracy" if mode == "train" else "eval_mean_token_accuracy"
            logs = {**logs, key: sum(accuracies) / len(accuracies)}
            accuracies.clear()
        if "loss" in logs:  # every rank logs at the same steps, so the sum over them is taken here
            logs = {**logs, "real_tokens": distributed.total(self.real_tokens)}
        super().log(logs, *args, **kwargs)


class StartupCallback(TrainerCallback):
    """One `startup` event at the end of the first step of this process: the seconds from the worker's start
    to each stage before it (`stages`, filled by the worker) and to the end of that step."""

    def __init__(self, events, began: float, stages: dict[str, float]):
        self.events, self.began, self.stages, self.done = events, began, stages, False

    def on_step_end(self, args, state, control, **kwargs):
        if not self.done:
            self.done = True
            seconds = {**self.stages, "first_step": time.perf_counter() - self.began}
            self.events.write("startup", seconds={k: round(v, 2) for k, v in seconds.items()})
