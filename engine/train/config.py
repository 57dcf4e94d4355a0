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

from engine.validation import sentences

LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
EMBEDDING_MODULES = ["embed_tokens", "lm_head"]
TEMPLATE_CHOICES = ("model", "chatml", "alpaca")  # the model's own, or a fallback of engine.chat.templates.FALLBACKS


class ConfigError(ValueError):
    """A run config that cannot be used; the message names each wrong field and what to do."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    name_or_path: str = Field(
        "default", min_length=1,
        description="'default' (the offline SmolLM2-135M), a Hugging Face id like unsloth/Qwen3-8B, or a local folder.",
    )
    load_in_4bit: bool = Field(
        False, description="QLoRA: the base model in 4-bit, about 4x less memory, small accuracy cost. Needs an NVIDIA GPU.",
    )
    max_seq_length: int = Field(
        1024, ge=32, le=131072,
        description="Longest conversation trained, in tokens; longer ones are cut. 2048 suits most chats; shorter saves memory.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto' picks bf16 or fp16 on a GPU by what it supports, float32 with bf16 mixed precision on a CPU that has it.",
    )
    trust_remote_code: bool = Field(
        False, description="Only for models whose authors you trust: runs code from the model's repository.",
    )


class LoraSection(_Section):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank: 8-16 to start; raise it if the model did not learn enough.")
    alpha: int = Field(16, ge=1, le=4096, description="Scaling of the LoRA update: set it to r or 2r.")
    dropout: float = Field(
        0.05, ge=0.0, lt=1.0, description="0.0 for large data sets, 0.05-0.1 for small ones (less over-fitting).",
    )
    target_modules: list[str] = Field(
        default_factory=lambda: list(LINEAR_MODULES), min_length=1,
        description="Layers that get adapters: attention q/k/v/o and the MLP gate/up/down. Adding embed_tokens and "
        "lm_head trains them fully (more memory; the tutorial's second example, with r=32, alpha=64).",
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Train biases too; 'none' is the usual choice.")
    use_rslora: bool = Field(False, description="Rank-stabilised LoRA: scales by alpha/sqrt(r); helps at high ranks.")
    loftq: bool = Field(
        False, description="LoftQ initialisation: starts the adapter so it offsets quantisation error. Slower start; "
        "not with 4-bit loading.",
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", description="Recompute activations instead of storing them: much less memory, some speed. "
        "'auto' turns it on for GPUs (unsloth's version) and off on a CPU.",
    )
    random_state: int = Field(3407, description="Seed for the adapter's starting weights.")


class TrainSection(_Section):
    epochs: float = Field(
        3.0, gt=0, le=100,
        description="Passes over the data: usually 3. Small data sets need more, large ones fewer; more than 10 "
        "usually over-fits.",
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps instead of counting epochs (empty: use epochs).",
    )
    learning_rate: float = Field(
        2e-4, gt=0, le=1.0,
        description="Too high forgets what the model knew, too low learns slowly. LoRA usually 1e-4 to 2e-4; the "
        "tutorial's full recipe uses 2e-5. A larger batch wants a larger learning rate.",
    )
    batch_size: int = Field(
        2, ge=1, le=1024,
        description="Conversations per step on the device: 1-2 for small memory, then raise gradient accumulation instead.",
    )
    gradient_accumulation: int = Field(
        4, ge=1, le=1024, description="Steps whose gradients add up before one update: batch x this = the effective batch (4-8 is common).",
    )
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"] = Field(
        "linear", description="How the learning rate changes over the run; linear or cosine decay are the usual choices.",
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Share of the steps spent ramping the learning rate up (0.03 is common).")
    optimizer: Literal["auto", "adamw_torch_fused", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "adafactor"] = Field(
        "auto", description="'auto' uses paged 8-bit AdamW where an NVIDIA GPU and bitsandbytes are there (less "
        "memory), PyTorch's fused AdamW otherwise.",
    )
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="A light pull of the weights towards zero; 0.0-0.01 is usual.")
    max_grad_norm: float = Field(1.0, gt=0, description="Clips large gradients so one odd batch cannot wreck the run (1.0 is usual).")
    logging_steps: int = Field(1, ge=1, description="Log the loss every this many steps. Keep the loss roughly between 0.5 and 1.5; near zero means over-fitting.")
    save_steps: int = Field(50, ge=1, description="Save a checkpoint (and answer the probe prompts) every this many steps.")
    save_total_limit: int = Field(2, ge=1, description="Keep only this many most recent checkpoints on disk.")
    seed: int = Field(3407, description="Seed for data order and dropout, so a run can be repeated.")
    assistant_only_loss: bool = Field(
        True, description="Learn only the assistant's replies, not the user's or system's text (recommended).",
    )
    batching: Literal["padding_free", "padded", "packed"] = Field(
        "padding_free", description="How conversations share a batch: padding-free (fastest: only real tokens are "
        "computed), padded to the longest in each batch of similar-length conversations, or packed into full-length rows.",
    )
    eval_split: float = Field(
        0.0, ge=0.0, le=0.5, description="Share of the conversations held out to measure the loss on unseen data (0 = none).",
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        "none", description="Also send the metrics to TensorBoard or Weights & Biases (the package must be installed).",
    )


class ProbeSection(_Section):
    prompts: list[str] = Field(
        default_factory=lambda: [
            "Introduce yourself in two sentences.",
            "What should I cook for dinner tonight?",
            "Explain what a rainbow is to a child.",
        ],
        description="Test prompts answered greedily before training and at each save, to see the model change.",
    )
    max_new_tokens: int = Field(48, ge=1, le=1024, description="Length of each probe answer, in tokens.")


class RunConfig(_Section):
    preset: str | None = Field(None, description="The preset this config started from, for reference.")
    model: ModelSection = Field(default_factory=ModelSection)
    template: Literal[TEMPLATE_CHOICES] = Field(
        "model", description="The chat format: the model's own template (falling back to ChatML), or force ChatML or Alpaca.",
    )
    dataset: str = Field(..., min_length=1, description="A saved data set's name, or the path to a data file.")
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    probes: ProbeSection = Field(default_factory=ProbeSection)

    @model_validator(mode="after")
    def _consistent(self) -> "RunConfig":
        if self.lora.loftq and self.model.load_in_4bit:
            raise ValueError("lora.loftq: LoftQ quantises the model itself, so it cannot start from a 4-bit model; "
                             "turn off LoftQ or model.load_in_4bit.")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def validate(data: Any) -> RunConfig:
    """A RunConfig from a dict, or a ConfigError whose lines name each wrong field in plain words."""
    if not isinstance(data, dict):
        raise ConfigError("A run config must be a mapping of settings (model, dataset, lora, train...).")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(sentences(e, advice)) from None


def load(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"There is no run config at '{path}'.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"'{path}' is not valid YAML: {e}") from None
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
