"""A LoRA adapter's folder: is it one, does it fit a loaded model, and what was it trained on."""

from __future__ import annotations

import re
from pathlib import Path


CONFIG_FILE = "adapter_config.json"  # what peft writes beside the weights: a folder holding it is an adapter


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / CONFIG_FILE).exists()


def mismatch(model, adapter: Path) -> str | None:
    """The first way the adapter's weight shapes disagree with the model's layers (a sentence), or
    None. Checked before peft touches the model, which it changes in place before it finds out."""
    from safetensors import safe_open

    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.exists():
        return None  # an older .bin adapter: peft's own error reports a mismatch
    with safe_open(weights, "pt") as f:
        for key in f.keys():
            problem = _layer_mismatch(model, key, tuple(f.get_slice(key).get_shape()))
            if problem:
                return problem
    return None


def _layer_mismatch(model, key: str, shape: tuple[int, ...]) -> str | None:
    path = key.removeprefix("base_model.model.")
    match = re.match(r"(.+)\.lora_(A|B|embedding_A|embedding_B)(\.weight)?$", path)
    if not match:  # a fully trained layer (modules_to_save, e.g. embed_tokens): compare whole shapes
        try:
            param = model.get_parameter(path)
        except AttributeError:
            return None
        if param.is_floating_point() and tuple(param.shape) != shape:
            return f"its layer {path} has shape {list(shape)}, the model's has {list(param.shape)}"
        return None
    module_path, part = match.group(1), match.group(2)
    try:
        module = model.get_submodule(module_path)
    except AttributeError:
        return f"it changes a layer the model does not have ({module_path})"
    module = getattr(module, "base_layer", module)
    if part in ("A", "B"):
        size_in, size_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if part == "A" and size_in is not None and shape[-1] != size_in:
            return f"its layer {module_path} takes {shape[-1]} inputs, the model's takes {size_in}"
        if part == "B" and size_out is not None and shape[0] != size_out:
            return f"its layer {module_path} gives {shape[0]} outputs, the model's gives {size_out}"
    else:
        rows, width = getattr(module, "num_embeddings", None), getattr(module, "embedding_dim", None)
        if part == "embedding_A" and rows is not None and shape[-1] != rows:
            return f"its embedding {module_path} has {shape[-1]} tokens, the model's has {rows}"
        if part == "embedding_B" and width is not None and shape[0] != width:
            return f"its embedding {module_path} is {shape[0]} wide, the model's is {width}"
    return None


def trained_on(adapter: Path) -> str:
    """The base model an adapter was trained on, as peft recorded it, for messages."""
    from peft import PeftConfig

    try:
        base = PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    except (OSError, ValueError, TypeError):  # no or a damaged adapter_config.json
        base = None
    return f"'{base}'" if base else "another base model"
