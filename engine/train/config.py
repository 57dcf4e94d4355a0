"""The run config: everything needed to repeat or resume a training run, saved as the run's `run.yaml`.

Each field's description is the tutorial's advice for it (the Train tab shows it beside the field).
Validation errors come out as plain sentences naming the field (`ConfigError`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from engine.chat import families
from engine.i18n import msg
from engine.validation import sentences

LINEAR_MODULES = families.default_target_modules()  # a model of a family gets its own: families.target_modules
EMBEDDING_MODULES = ["embed_tokens", "lm_head"]
TEMPLATE_CHOICES = ("model", "chatml", "alpaca")  # the model's own, or a fallback of engine.chat.templates.FALLBACKS
METHODS = ("supervised", "dpo", "orpo", "kto")
PREFERENCE_METHODS = METHODS[1:]


class ConfigError(ValueError):
    """A run config that cannot be used; the message names each wrong field and what to do."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _labels(**labels: str) -> dict:
    """The words a form shows for a choice's values (engine.train.form reads them)."""
    return {"labels": labels}


class ModelSection(_Section):
    name_or_path: str = Field(
        "default", min_length=1, title="Model",
        description="'default' (the offline SmolLM2-135M), a Hugging Face id like unsloth/Qwen3-8B, or a local folder.",
    )
    load_in_4bit: bool = Field(
        False, title="Load in 4-bit (QLoRA)",
        description="QLoRA: the base model in 4-bit, about 4x less memory, small accuracy cost. Needs an NVIDIA GPU.",
    )
    max_seq_length: int = Field(
        1024, ge=32, le=131072, title="Maximum length (tokens)",
        description="Longest conversation trained, in tokens; longer ones are cut (the plan says how many). Shorter "
        "saves memory; 2048 suits most chats.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", title="Number format (dtype)",
        description="How the weights' numbers are held. 'auto' picks a 16-bit format the GPU supports; on a CPU it "
        "keeps 32-bit numbers and computes in 16-bit where the CPU can.",
        json_schema_extra=_labels(auto="auto (by the hardware)", float32="32-bit (float32)",
                                  bfloat16="16-bit (bfloat16)", float16="16-bit (float16)"),
    )
    trust_remote_code: bool = Field(
        False, title="Trust remote code",
        description="Only for models whose authors you trust: runs code from the model's repository.",
    )


class LoraSection(_Section):
    r: int = Field(
        16, ge=1, le=1024, title="LoRA rank (r)",
        description="How much the adapter can learn: 8-16 to start; raise it if the model did not learn enough.",
    )
    alpha: int = Field(
        16, ge=1, le=4096, title="LoRA alpha (scaling)",
        description="How strongly the adapter's update counts: usually r or 2r.",
    )
    dropout: float = Field(
        0.05, ge=0.0, lt=1.0, title="LoRA dropout",
        description="Leaves out a random part of the adapter at each step, against over-fitting: 0.0 for large data "
        "sets, 0.05-0.1 for small ones.",
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(LINEAR_MODULES), min_length=1, title="Layers to adapt (target modules)",
        description="Layers that get adapters: attention q/k/v/o and the MLP gate/up/down. Adding embed_tokens and "
        "lm_head trains them fully (more memory; the tutorial's second example, with r=32, alpha=64). With all "
        "seven ticked, a model that fuses them (Phi-3: qkv_proj, gate_up_proj) adapts its own fused layers.",
    )
    bias: Literal["none", "all", "lora_only"] = Field(
        "none", title="Train biases", description="Train the layers' biases too; 'none' is the usual choice.",
        json_schema_extra=_labels(none="none (usual)", all="all biases", lora_only="only in adapted layers"),
    )
    use_rslora: bool = Field(
        False, title="Rank-stabilised LoRA (rsLoRA)",
        description="Scales the update by alpha/sqrt(r) instead of alpha/r, so high ranks (64 and more) still learn "
        "steadily. Off is the usual choice.",
    )
    loftq: bool = Field(
        False, title="LoftQ initialisation",
        description="Starts the adapter so it offsets the rounding error of a quantised model. Slower start; not with "
        "4-bit loading. Off is the usual choice.",
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", title="Gradient checkpointing (saves memory)",
        description="Recompute activations instead of storing them: much less memory, some speed. 'auto' turns it on "
        "for GPUs (unsloth's version) and off on a CPU.",
    )
    checkpointed_layers: int | None = Field(
        None, ge=0, title="Layers checkpointed",
        description="How many layers recompute their activations (when checkpointing is not 'off'). Empty: with "
        "'auto' on a GPU the plan checkpoints the fewest that fit in memory (faster); with 'on', every layer.",
    )
    random_state: int = Field(3407, title="Adapter seed", description="Seed for the adapter's starting weights.")

    def targets(self, model_type: str | None) -> list[str]:
        """The layers adapted in a model of this config model_type. The default list names layers that
        some families lack (Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj), so where the
        linear layers chosen are the default ones, the family's own (families.yaml) replace them."""
        embeddings = [m for m in self.target_modules if m in EMBEDDING_MODULES]
        if {m for m in self.target_modules if m not in EMBEDDING_MODULES} != set(LINEAR_MODULES):
            return list(self.target_modules)
        return families.target_modules(model_type) + embeddings


class TrainSection(_Section):
    epochs: float = Field(
        3.0, gt=0, le=100, title="Epochs",
        description="Passes over the data: usually 3. Small data sets need more, large ones fewer; past about 10 "
        "the model usually over-fits.",
    )
    max_steps: int | None = Field(
        None, ge=1, title="Max steps",
        description="Stop after this many optimizer steps instead of counting epochs (none set: use epochs).",
    )
    learning_rate: float = Field(
        2e-4, gt=0, le=1.0, title="Learning rate",
        description="How big each update is: too high forgets what the model knew, too low learns slowly. LoRA "
        "usually takes 1e-4 to 3e-4; a larger batch wants a larger one.",
    )
    batch_size: int = Field(
        2, ge=1, le=1024, title="Batch size (per step)",
        description="Conversations in one step: more is faster per conversation but needs more memory. Short of "
        "memory, lower it and raise gradient accumulation instead.",
    )
    gradient_accumulation: int = Field(
        4, ge=1, le=1024, title="Gradient accumulation steps",
        description="Steps whose gradients add up before one update: batch size x this = the effective batch "
        "(4-16 is common).",
    )
    processes: int | None = Field(
        None, ge=1, le=64, title="Processes (GPUs)",
        description="Training processes on this machine, one a GPU (none set: every GPU when there are several, "
        "else one). The effective batch stays batch size x accumulation: each process accumulates its share.",
    )
    sharding: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", title="Sharding (several GPUs)",
        description="How several processes hold the model: DDP gives each GPU a whole copy (fastest), FSDP splits "
        "the weights, adapter and optimizer across the GPUs, for a model that does not fit one card. 'auto' takes "
        "DDP where a copy fits each GPU, else FSDP. One process ignores it.",
        json_schema_extra=_labels(auto="auto (DDP where it fits)", ddp="DDP (a copy a GPU)",
                                  fsdp="FSDP (split across the GPUs)"),
    )
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"] = Field(
        "linear", title="Learning-rate schedule",
        description="How the learning rate changes over the run; linear or cosine decay are the usual choices.",
        json_schema_extra=_labels(linear="linear decay", cosine="cosine decay", constant="constant",
                                  constant_with_warmup="constant after warm-up",
                                  cosine_with_restarts="cosine with restarts"),
    )
    warmup_ratio: float = Field(
        0.03, ge=0.0, lt=1.0, title="Warm-up share",
        description="Share of the steps spent ramping the learning rate up (0.03-0.05 is common).",
    )
    optimizer: Literal["auto", "adamw_torch_fused", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "adafactor"] = Field(
        "auto", title="Optimizer",
        description="'auto' uses paged 8-bit AdamW where an NVIDIA GPU and bitsandbytes are there (less memory), "
        "PyTorch's fused AdamW otherwise.",
        json_schema_extra=_labels(auto="auto (by the hardware)", adamw_torch_fused="AdamW (fused)",
                                  adamw_torch="AdamW", adamw_8bit="8-bit AdamW (NVIDIA GPU)",
                                  paged_adamw_8bit="paged 8-bit AdamW (NVIDIA GPU)", adafactor="Adafactor"),
    )
    weight_decay: float = Field(
        0.01, ge=0.0, le=1.0, title="Weight decay",
        description="A light pull of the weights towards zero; 0.0-0.01 is usual.",
    )
    max_grad_norm: float = Field(
        1.0, gt=0, title="Gradient clipping (max norm)",
        description="Clips large gradients so one odd batch cannot wreck the run (1.0 is usual).",
    )
    logging_steps: int = Field(1, ge=1, title="Log every N steps", description="Log the loss every this many steps.")
    save_steps: int = Field(
        50, ge=1, title="Checkpoint every N steps",
        description="Save a checkpoint (and answer the probe prompts) every this many steps.",
    )
    save_total_limit: int = Field(
        2, ge=1, title="Checkpoints kept", description="Keep only this many most recent checkpoints on disk.",
    )
    seed: int = Field(3407, title="Training seed", description="Seed for data order and dropout, so a run can be repeated.")
    assistant_only_loss: bool = Field(
        True, title="Learn only the assistant's replies",
        description="Learn only the assistant's replies, not the user's or system's text (recommended).",
    )
    batching: Literal["padding_free", "padded", "packed"] = Field(
        "padding_free", title="Batching",
        description="How conversations share a step: padding-free (fastest: only real tokens are computed), padded "
        "to the longest in each group of similar length, or packed into full-length rows.",
        json_schema_extra=_labels(padding_free="padding-free (fastest)", padded="padded", packed="packed"),
    )
    eval_split: float = Field(
        0.0, ge=0.0, le=0.5, title="Held-out share",
        description="Share of the conversations held out to measure the loss on unseen data (0 = none).",
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        "none", title="Send metrics to",
        description="Also send the metrics to TensorBoard or Weights & Biases (its package must be installed).",
        json_schema_extra=_labels(none="only this app", tensorboard="TensorBoard", wandb="Weights & Biases"),
    )


class ProbeSection(_Section):
    prompts: list[str] = Field(
        default_factory=lambda: [
            "Introduce yourself in two sentences.",
            "What should I cook for dinner tonight?",
            "Explain what a rainbow is to a child.",
        ],
        title="Probe prompts (one a line)",
        description="Test prompts answered greedily before training and at each save, to see the model change.",
    )
    max_new_tokens: int = Field(
        48, ge=1, le=1024, title="Probe answer length (tokens)", description="Length of each probe answer, in tokens.",
    )


class PreferenceSection(_Section):
    """Preference tuning (DPO, ORPO, KTO): how far from its start the model may move, where it starts,
    and which runs' blind votes and whether the chat choices add pairs to the data set's."""

    beta: float = Field(
        0.1, gt=0, le=10, title="Beta (how far from the start)",
        description="How strongly the tuned model is held near the model it starts from: 0.1 is usual; lower "
        "(0.05) follows the preferences more, higher (0.3-0.5) stays closer to the start.",
    )
    start_from: str = Field(
        "", title="Start from run",
        description="A supervised run whose adapter this run continues (the usual path: supervised, then DPO); "
        "empty starts a fresh adapter on the base model.",
    )
    votes_from: list[str] = Field(
        default_factory=list, title="Votes of runs",
        description="Runs whose blind Compare votes add pairs: the answer voted for, preferred over the other "
        "answer to the same prompt (ties are left out).",
    )
    chat_choices: bool = Field(
        False, title="Chat choices",
        description="Add the pairs marked on the Chat tab: after Regenerate, the reply marked better is preferred "
        "over the other one to the same conversation.",
    )


class RunConfig(_Section):
    preset: str | None = Field(None, title="Preset", description="The preset this config started from, for reference.")
    model: ModelSection = Field(default_factory=ModelSection)
    template: Literal[TEMPLATE_CHOICES] = Field(
        "model", title="Chat template",
        description="The chat format: the model's own template (falling back to ChatML), or force ChatML or Alpaca.",
    )
    dataset: str = Field(
        ..., min_length=1, title="Data set", description="A saved data set's name, or the path to a data file.",
    )
    method: Literal[METHODS] = Field(
        "supervised", title="Method",
        description="Supervised learns the replies of the data set. DPO and ORPO learn from pairs (a chosen and a "
        "rejected reply to the same prompt), KTO from single replies marked good or bad. DPO and KTO work best "
        "after a supervised run (Start from run), with a small learning rate (5e-6 to 5e-5); ORPO needs no "
        "supervised run first.",
        json_schema_extra=_labels(supervised="supervised (learn the replies)", dpo="DPO (pairs)",
                                  orpo="ORPO (pairs, no supervised run first)", kto="KTO (good or bad replies)"),
    )
    preference: PreferenceSection = Field(default_factory=PreferenceSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    probes: ProbeSection = Field(default_factory=ProbeSection)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.lora.loftq and self.model.load_in_4bit:
            raise ValueError(msg("lora.loftq: LoftQ quantises the model itself, so it cannot start from a 4-bit "
                                 "model; turn off LoftQ or model.load_in_4bit."))
        preference = self.preference
        if self.method == "supervised" and (preference.start_from or preference.votes_from or preference.chat_choices):
            raise ValueError("preference: starting from a run and adding votes or chat choices are for preference "
                             "methods; choose method dpo, orpo or kto, or clear preference.start_from, "
                             "preference.votes_from and preference.chat_choices.")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def validate(data: Any) -> RunConfig:
    """A RunConfig from a dict, or a ConfigError whose lines name each wrong field in plain words."""
    if not isinstance(data, dict):
        raise ConfigError(msg("A run config must be a mapping of settings (model, dataset, lora, train...)."))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(sentences(e, advice)) from None


def load(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(msg("There is no run config at '{path}'.", path=path)) from None
    except yaml.YAMLError as e:
        raise ConfigError(msg("'{path}' is not valid YAML: {problem}", path=path, problem=e)) from None
    return validate(data)


def with_changes(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """A copy with dotted-path changes applied, e.g. {"train.batch_size": 1}, validated again."""
    return validate(put(config.model_dump(mode="json"), changes))


# ---- dotted paths: the one way the form, the presets and the advice name a setting ----------------

def field(path: str) -> FieldInfo:
    """The field a dotted path names, e.g. 'lora.r'; a KeyError for a path that is no setting."""
    model: type[BaseModel] = RunConfig
    *parents, leaf = path.split(".")
    for key in parents:
        model = model.model_fields[key].annotation
    return model.model_fields[leaf]


def get(config: RunConfig, path: str) -> Any:
    value: Any = config
    for key in path.split("."):
        value = getattr(value, key)
    return value


def put(data: dict, changes: dict[str, Any]) -> dict:
    """A copy of nested config data with each dotted path set to its value."""
    out = copy.deepcopy(data)
    for path, value in changes.items():
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config data as dotted paths: {"train": {"epochs": 1}} -> {"train.epochs": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def advice(path: str) -> str:
    """The tutorial's one-line advice for a dotted field path, e.g. 'lora.r'."""
    return field(path).description or ""
