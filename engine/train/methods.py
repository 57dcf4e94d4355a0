"""Preference tuning through trl's own trainers: DPO, ORPO (trl.experimental in trl 1.15) and KTO.

Each trainer counts the real tokens it computes (the prompt and both replies, without padding) so
tokens/s in the events means what it means for supervised runs, and logs them as `real_tokens`.
A model that already carries a supervised run's adapter keeps training that adapter; DPO and KTO copy
it as their reference ("ref" adapter, trl's own handling of a PEFT model), so the run is measured
against the supervised model it started from and the saved adapter applies to the base model alone;
a fresh adapter's reference is the base model itself.
"""

from __future__ import annotations

from pathlib import Path

from engine.i18n import joined, msg
from engine.train.backend import Settings
from engine.train.config import RunConfig
from engine.train.trainer import common_args

# The attention masks of the sequences each trainer computes, in the batches its collator makes.
_MASKS = {
    "dpo": ("attention_mask",),  # chosen and rejected, each with its prompt
    "orpo": ("chosen_attention_mask", "rejected_attention_mask"),
    "kto": ("attention_mask", "KL_attention_mask"),  # the replies, and the mismatched pairs of the KL term
}


def _classes(method: str):
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer
    if method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOConfig, ORPOTrainer
    from trl import KTOConfig, KTOTrainer

    return KTOConfig, KTOTrainer


def _counting(base: type, masks: tuple[str, ...]) -> type:
    """`base` with the real-token count behind tokens/s (engine/train/callbacks.py reads `real_tokens`)."""

    class Counting(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.real_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.model.training:
                self.real_tokens += sum(int(inputs[m].sum()) for m in masks if m in inputs)
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def log(self, logs, *args, **kwargs):
            if "loss" in logs:
                logs = {**logs, "real_tokens": self.real_tokens}
            super().log(logs, *args, **kwargs)

    Counting.__name__ = f"Workbench{base.__name__}"
    return Counting


def preference_args(config: RunConfig, settings: Settings, output_dir: Path, measure_steps: int = 0,
                    evaluate: bool = False):
    """trl's config for the run's method: the shared arguments, beta, and the maximum length (trl cuts
    each prompt and reply itself)."""
    config_class, _ = _classes(config.method)
    extra = {"desirable_weight": 1.0, "undesirable_weight": 1.0} if config.method == "kto" else {}
    return config_class(
        **common_args(config, settings, output_dir, measure_steps, evaluate),
        beta=config.preference.beta, max_length=config.model.max_seq_length, **extra,
    )


def preference_trainer(config: RunConfig, settings: Settings, **kwargs):
    """The run method's trainer, built with trl's own arguments (`model`, `args`, `processing_class`, ...)."""
    from engine.train import logprobs

    if settings.backend == "unsloth" and config.method == "dpo":
        _patch_unsloth_dpo()
    logprobs.install()  # DPO's and KTO's log-probabilities where Triton is missing
    _, trainer_class = _classes(config.method)
    trainer = _counting(trainer_class, _MASKS[config.method])(**kwargs)
    _drop_identical_reference(trainer.model)
    return trainer


def _drop_identical_reference(model) -> None:
    """trl copies a PEFT model's adapter as the "ref" adapter its reference pass runs. A fresh LoRA adapter
    (every B matrix zero) computes exactly what the base model does, so the reference pass runs with the
    adapters disabled instead (trl's own path when there is no "ref"): the same log-probabilities without
    the adapter's matrix products."""
    if "ref" not in getattr(model, "peft_config", {}):
        return
    if all(not p.any() for name, p in model.named_parameters() if ".default." in name and "lora_B" in name):
        model.delete_adapter("ref")


def _patch_unsloth_dpo() -> None:
    """unsloth's DPO patch, where the installed unsloth still has it (untested here: no CUDA on the build
    machines; the GPU runs go through gpu/README.md)."""
    try:
        from unsloth import PatchDPOTrainer
    except ImportError:
        return
    PatchDPOTrainer()


def starting_adapter(workspace, config: RunConfig) -> Path | None:
    """The adapter of the run named in `preference.start_from` (None: a fresh adapter on the base model);
    a ConfigError when that run has none or was trained on another model."""
    from engine.i18n import msg
    from engine.train.config import ConfigError
    from engine.train.runs import load_run

    name = config.preference.start_from.strip()
    if not name:
        return None
    try:
        run = load_run(workspace, name)
    except ValueError as e:  # RunError, or a name that is no run name
        raise ConfigError(str(e)) from None
    if run.adapter is None:
        raise ConfigError(msg("The run '{run}' has no final adapter to start from yet (it is {state}); wait for it to "
                              "finish, or clear Start from run.", run=name, state=run.state))
    if run.config.model.name_or_path != config.model.name_or_path:
        raise ConfigError(msg("The run '{run}' trained the model '{theirs}', not '{ours}': a preference run continues "
                              "an adapter on the model it was trained on. Choose that model, or another run.",
                              run=name, theirs=run.config.model.name_or_path, ours=config.model.name_or_path))
    return run.adapter


def train_preference(run, workspace, stop, settings: Settings, model, tokenizer, events, measure_steps=None) -> str:
    """The worker's recipe from its third step on, for DPO, ORPO and KTO: the preference records, the
    probes, trl's trainer, train (resuming from the latest checkpoint), the adapter. Returns the final state."""
    import statistics

    from datasets import Dataset

    from engine.files import atomic_dir
    from engine.train import pairs, plan, probes
    from engine.train.callbacks import ProbeCallback, ProgressCallback, StopCallback
    from engine.train.tokens import split
    from engine.train.worker import ended

    config, run_dir = run.config, run.path
    # 3. The preference records of every source, some held out when the config says so.
    found = pairs.sources(workspace, config)
    train_rows, eval_rows = split(pairs.training_records(found, config.method), config.train)
    counted = joined([msg("{count} from {name}", count=len(s.records), name=s.name) for s in found], "; ")
    events.message(msg("{method} on {rows} records ({sources}); beta {beta}.", method=config.method.upper(),
                       rows=len(train_rows), sources=counted, beta=config.preference.beta))

    # 4. The probe prompts, answered by the model the run starts from.
    if config.probes.prompts and not measure_steps and 0 not in probes.recorded_steps(run_dir):
        probes.record(run_dir, 0, model, tokenizer, config.probes.prompts, config.probes.max_new_tokens)
        events.message(msg("The probe prompts were answered by the untrained model (step 0)."))

    # 5. trl's trainer for the method.
    trainer = preference_trainer(
        config, settings, model=model, processing_class=tokenizer,
        args=preference_args(config, settings, run_dir / "checkpoints", measure_steps, evaluate=bool(eval_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        callbacks=[ProbeCallback(run_dir, config.probes.prompts, config.probes.max_new_tokens, events),
                   ProgressCallback(events, settings.device), StopCallback(stop)],
    )

    # 6. Train, from the latest checkpoint where there is one.
    if stop.is_set():
        return "stopped"
    resume_from = None if measure_steps else run.latest_checkpoint
    if resume_from:
        events.message(msg("Resuming from {checkpoint}.", checkpoint=resume_from.name))
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    steps = [e for e in events.read() if e.get("type") == "step"]
    if rates := [e["tokens_per_s"] for e in steps if e.get("tokens_per_s")]:
        source = "a few measured steps" if measure_steps else f"run {run_dir.name}"
        plan.record_speed(workspace, config, settings, statistics.median(rates),
                          max(e["peak_memory_gb"] for e in steps), source)
    if measure_steps:
        return "completed"

    # 7. The trained adapter alone (not the reference copy trl adds), with the tokenizer.
    with atomic_dir(run_dir / "adapter") as tmp:
        trainer.model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)
    state = "stopped" if stop.is_set() else "completed"
    events.message(ended(state, trainer.state.global_step))
    return state
