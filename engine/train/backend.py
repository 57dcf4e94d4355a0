"""What this machine makes of a run config, and the model with its LoRA adapter, loaded by one of the
two backends (DESIGN.md, decision 4): unsloth on a CUDA GPU, plain transformers + peft elsewhere."""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.hardware import Hardware
from engine.i18n import Message, joined, msg
from engine.train.config import EMBEDDING_MODULES, ConfigError, RunConfig


@dataclass(frozen=True)
class Settings:
    device: str  # cuda | mps | cpu
    backend: str  # unsloth | transformers
    weights_dtype: str  # float32 | bfloat16 | float16
    mixed_precision: str  # no | bf16 | fp16
    optimizer: str  # the TrainingArguments `optim`
    gradient_checkpointing: bool
    checkpointed_layers: int | None = None  # with checkpointing on: how many layers recompute (None: all)
    sharded: bool = False  # FSDP across the run's processes (the plan's choice, plan.sharding), else DDP or one

    def describe(self) -> Message:
        precision = self.weights_dtype if self.mixed_precision == "no" else msg(
            "{weights} with {mixed} mixed precision", weights=self.weights_dtype, mixed=self.mixed_precision)
        if self.gradient_checkpointing and self.checkpointed_layers is not None:
            return msg("{backend} on {device}, {precision}, optimizer {optimizer}, gradient checkpointing on for "
                       "{layers} layers", backend=self.backend, device=self.device, precision=precision,
                       optimizer=self.optimizer, layers=self.checkpointed_layers)
        return msg("{backend} on {device}, {precision}, optimizer {optimizer}, gradient checkpointing on"
                   if self.gradient_checkpointing else
                   "{backend} on {device}, {precision}, optimizer {optimizer}, gradient checkpointing off",
                   backend=self.backend, device=self.device, precision=precision, optimizer=self.optimizer)

    def as_dict(self) -> dict:
        return asdict(self)


def resolve(config: RunConfig, hw: Hardware) -> Settings:
    """The concrete choices for this machine; a ConfigError names each setting it cannot honour."""
    settings, problems = choose(config, hw)
    if problems:
        raise ConfigError(joined(problems, "\n"))
    return settings


def choose(config: RunConfig, hw: Hardware) -> tuple[Settings, list[str]]:
    """The concrete choices for this machine, and the settings it cannot honour (one sentence each)."""
    problems = []
    if config.model.load_in_4bit and not hw.can_4bit:
        problems.append(msg("model.load_in_4bit: 4-bit loading needs an NVIDIA GPU with bitsandbytes, and this "
                            "machine has {hardware}. Turn 4-bit off.", hardware=hw.name))
    weights, mixed = _precision(config.model.dtype, hw, problems)
    optimizer = config.train.optimizer
    if optimizer == "auto":
        optimizer = "paged_adamw_8bit" if hw.can_4bit else "adamw_torch_fused"
    elif "8bit" in optimizer and not hw.can_4bit:
        problems.append(msg("train.optimizer: '{optimizer}' needs an NVIDIA GPU with bitsandbytes; choose 'auto' or "
                            "'adamw_torch_fused' here.", optimizer=optimizer))
    if config.train.report_to != "none" and importlib.util.find_spec(config.train.report_to) is None:
        problems.append(msg("train.report_to: the package '{package}' is not installed; install it "
                            "(pip install {package}) or choose 'none'.", package=config.train.report_to))
    if hw.device == "cuda" and config.train.processes:
        from engine.train import distributed

        if config.train.processes > (gpus := distributed.visible_gpus()):
            problems.append(msg("train.processes: {count} processes need {count} GPUs, one each, and this machine "
                                "has {gpus}. Choose {gpus} or fewer, or leave it empty.",
                                count=config.train.processes, gpus=gpus))
    if hw.device != "cuda" and config.train.sharding == "fsdp" and (config.train.processes or 1) > 1:
        # accelerate 1.15 turns FSDP on only for GPU-like devices: on a CPU the processes would train with DDP.
        problems.append(msg("train.sharding: FSDP splits the model across NVIDIA GPUs, and this machine has "
                            "{hardware}, where several processes train with DDP. Choose 'auto' or 'ddp'.",
                            hardware=hw.name))
    checkpointing = {"on": True, "off": False, "auto": hw.device == "cuda"}[config.lora.gradient_checkpointing]
    return Settings(hw.device, hw.backend, weights, mixed, optimizer, checkpointing), problems


def slow_attention(config: RunConfig, settings: Settings) -> str | None:
    """unsloth attends to a padding-free or packed batch in one call a layer through flash-attn,
    xformers, torch's own variable-length attention (torch 2.12 or newer: it needs `enable_gqa`), or
    torch's flash kernel that engine/train/varlen.py hands it on an older torch. With none of them it
    calls attention once per conversation and layer, which on an H200 launched three times the kernels
    of a padded step (bench/RESULTS.md, with the profile). A sentence saying so, or None."""
    if settings.backend != "unsloth" or config.train.batching == "padded":
        return None
    from engine.train import varlen

    if importlib.util.find_spec("xformers") or importlib.util.find_spec("flash_attn") or torch_varlen_attention() \
            or varlen.available():
        return None
    import torch

    return msg("torch {version} has no variable-length attention for grouped-query models, and neither "
               "xformers nor flash-attn is installed, so unsloth attends to each conversation of a batch separately; "
               "padded batches then train faster, with more memory. Install torch 2.12 "
               "or newer (or xformers) for full speed, or set batching to 'padded'.", version=torch.__version__.split('+')[0])


def torch_varlen_attention() -> bool:
    """torch's variable-length attention with grouped-query support, which unsloth uses when present."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return False
    return "enable_gqa" in inspect.signature(varlen_attn).parameters


def _precision(dtype: str, hw: Hardware, problems: list[str]) -> tuple[str, str]:
    if hw.device == "cuda":
        if dtype == "auto":
            dtype = "bfloat16" if hw.bf16 else "float16"
        if dtype == "bfloat16" and not hw.bf16:
            problems.append(msg("model.dtype: {hardware} has no bfloat16; choose 'auto' or 'float16'.", hardware=hw.name))
        return dtype, {"bfloat16": "bf16", "float16": "fp16", "float32": "no"}[dtype]
    # CPU and Apple: the weights stay float32 (the LoRA update needs it); bf16 autocast speeds up the
    # matrix products where the CPU has bf16 instructions.
    if dtype == "float16":
        problems.append("model.dtype: float16 training needs a GPU; choose 'auto' or 'float32'.")
    if dtype == "bfloat16" or (dtype == "auto" and hw.device == "cpu" and cpu_has_bf16()):
        return "float32", "bf16"
    return "float32", "no"


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load(config: RunConfig, settings: Settings, model_path: Path, adapter: Path | None = None):
    """The model with a fresh LoRA adapter attached (or, given `adapter`, that adapter, to train further),
    and its tokenizer."""
    if settings.backend == "unsloth":
        return _load_unsloth(config, settings, model_path, adapter)
    return _load_transformers(config, settings, model_path, adapter)


def _continue(model, adapter: Path):
    """A saved adapter on the loaded base model, trainable (a preference run after a supervised one)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)


def _load_unsloth(config: RunConfig, settings: Settings, model_path: Path, adapter: Path | None = None):
    import torch
    from unsloth import FastLanguageModel

    from engine.train import varlen

    varlen.install()
    lora = config.lora
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_path), max_seq_length=config.model.max_seq_length,
        dtype=getattr(torch, settings.weights_dtype), load_in_4bit=config.model.load_in_4bit,
        trust_remote_code=config.model.trust_remote_code,
    )
    if adapter is not None:  # untested here: no CUDA on the build machines
        return _continue(model, adapter), tokenizer
    model = FastLanguageModel.get_peft_model(
        model, r=lora.r, target_modules=lora.targets(model.config.model_type), lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        bias=lora.bias, use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing else False,
        random_state=lora.random_state, use_rslora=lora.use_rslora, loftq_config=_loftq(lora.loftq),
    )
    return model, tokenizer


def checkpoint_layers(model, settings: Settings) -> int:
    """Checkpoint `settings.checkpointed_layers` of the model's decoder layers (all where None); the others
    keep their activations. Returns how many are."""
    if not settings.gradient_checkpointing:
        return 0
    if settings.backend != "unsloth":
        # The trainer would turn every layer on again (its gradient_checkpointing is off: trainer.training_args).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    layers = decoder_layers(model)
    k = len(layers) if settings.checkpointed_layers is None else min(settings.checkpointed_layers, len(layers))
    set_checkpointed(model, settings, k)
    return k


def decoder_layers(model) -> list:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def set_checkpointed(model, settings: Settings, k: int) -> None:
    """Checkpoint k decoder layers from the next forward on (checkpointing must be on, checkpoint_layers).
    unsloth's own `skip_checkpointing` spreads the kept layers evenly; it only ever marks more layers, so
    the marks of an earlier call are taken off first. On the transformers backend the first k are."""
    layers = decoder_layers(model)
    if settings.backend == "unsloth":
        from unsloth.models._utils import skip_checkpointing

        for layer in layers:
            layer.__dict__.pop("_unsloth_skip_checkpoint", None)
        if k < len(layers):
            skip_checkpointing(model, "max" if k == 0 else len(layers) - k)
        return
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i < k


def _load_transformers(config: RunConfig, settings: Settings, model_path: Path, adapter: Path | None = None):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from engine.chat.templates import load_tokenizer

    lora = config.lora
    dtype = getattr(torch, settings.weights_dtype)
    # FSDP shards the 4-bit weights with the others only when they are stored in the same dtype (bitsandbytes'
    # FSDP-QLoRA guide: quant_storage equal to the model's dtype).
    storage = {"bnb_4bit_quant_storage": dtype} if settings.sharded else {}
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
        **storage,
    ) if config.model.load_in_4bit else None
    tokenizer = load_tokenizer(model_path, None, trust_remote_code=config.model.trust_remote_code)
    if settings.sharded:
        _fsdp_loading()
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, quantization_config=quantization, attn_implementation="sdpa",
        trust_remote_code=config.model.trust_remote_code,
        device_map={"": _device(settings.device, settings.sharded and quantization is None)},
    )
    # prepare_model_for_kbit_training upcasts the norms and embeddings to float32, and FSDP-QLoRA wants every
    # parameter in the storage dtype; the checkpointing it would turn on is backend.checkpoint_layers' anyway.
    if quantization is not None and not settings.sharded:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    if adapter is not None:
        return _continue(model, adapter), tokenizer
    torch.manual_seed(lora.random_state)
    targets = lora.targets(model.config.model_type)
    peft_config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias, use_rslora=lora.use_rslora,
        target_modules=[m for m in targets if m not in EMBEDDING_MODULES],
        # Embeddings and the LM head train fully, as unsloth does when they are named as targets.
        modules_to_save=[m for m in targets if m in EMBEDDING_MODULES] or None,
        init_lora_weights="loftq" if lora.loftq else True, loftq_config=_loftq(lora.loftq) or {},
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config), tokenizer


def _device(device: str, on_host: bool = False) -> str:
    """Each process of a run on several GPUs holds its model on its own GPU; a 16-bit model that FSDP shards
    loads into host memory first (`on_host`), and only its shards move to the GPUs."""
    from engine.train import distributed

    if on_host:
        return "cpu"
    return f"cuda:{distributed.local_rank()}" if device == "cuda" and distributed.world() > 1 else device


def _fsdp_loading() -> None:
    """accelerate's FSDP loading (`cpu_ram_efficient_loading`), as `accelerate launch` sets it up: the weights
    FSDP splits come from local rank 0, broadcast as it shards the model; transformers looks for the setting
    in the environment and for an initialised process group while it loads."""
    import os

    from accelerate import PartialState

    os.environ["ACCELERATE_USE_FSDP"] = "true"
    os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "true"
    PartialState()


def _loftq(enabled: bool):
    if not enabled:
        return None
    from peft import LoftQConfig

    return LoftQConfig(loftq_bits=4)
