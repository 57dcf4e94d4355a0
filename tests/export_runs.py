"""A run folder for the export tests, made directly: a base model with a LoRA adapter whose B matrices
are set to random non-zero values (a fresh LoRA has B = 0, which would change nothing).

This stands in for a trained run only to keep the tests fast: the folder has what a training run
leaves (run.yaml, adapter/ with the training tokenizer and its marked chat template), and export
reads nothing else.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.workspace import Workspace


def make_run(workspace: Workspace, name: str, base_spec: str, base_path: Path, scale: float = 0.02,
             template: str = "model") -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.chat.templates import prepare_tokenizer

    run = workspace.runs / name
    torch.manual_seed(0)  # the A matrices' random start
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(base_path), template_choice=template)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, param in peft_model.named_parameters():
            if "lora_B" in key:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    peft_model.save_pretrained(run / "adapter")
    tokenizer.save_pretrained(run / "adapter")
    config = {"model": {"name_or_path": base_spec, "load_in_4bit": False, "max_seq_length": 1024},
              "template": template, "dataset": "stand-in"}
    (run / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return run


def ensure_llama_cpp(what: str) -> None:
    """The GGUF tools, as `make gguf-tools` / `make gguf-quantizer` install them (a no-op once there)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, str(root / "tools" / "llama_cpp.py"), what], check=True)
