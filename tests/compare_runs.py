"""Run folders for the compare and chat tests.

`adapter_run` saves a LoRA adapter made directly with peft into RUN/adapter/ beside a run.yaml and a
completed status: it stands in for a trained run to keep the tests fast, and lets a test choose the
adapter's weights (zero LoRA B weights, peft's own start, change nothing; non-zero ones do).
`trained_run` makes a real one with the training worker on the tiny model (about 20 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from engine.files import write_json, write_text
from engine.train.config import validate
from engine.train.runs import now
from engine.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
PIRATE = ROOT / "examples" / "data" / "pirate.jsonl"
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapter_run(workspace: Workspace, name: str, model_path: Path, std: float = 0.0, seed: int = 0,
                probes: dict[int, list[str]] | None = None, prompts: list[str] | None = None,
                settings: dict | None = None) -> Path:
    """A run folder whose adapter's LoRA B weights are zero (std 0: peft's own start) or drawn with this std;
    `settings`: more of its run.yaml (e.g. a preference method and the run it started from)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = workspace.runs / name
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path),
                           LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LINEAR))
    if std:  # both LoRA matrices drawn from the seed, so the same call makes the same adapter every time
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "lora_A" in param_name:
                    param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)
                elif "lora_B" in param_name:
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
    model.save_pretrained(path / "adapter")
    prompts = prompts or ["Introduce yourself in two sentences."]
    config = validate({"model": {"name_or_path": str(model_path)}, "dataset": str(PIRATE),
                       "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "probes": {"prompts": prompts},
                       **(settings or {})})
    write_text(path / "run.yaml", config.to_yaml())
    write_json(path / "status.json", {"state": "completed", "created": now(), "ended": now()})
    for step, answers in (probes or {}).items():
        with open(path / "probes.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": now(), "step": step, "prompts": prompts, "answers": answers}) + "\n")
    return path


def trained_run(workspace: Workspace, name: str, tiny_model_path: Path) -> Path:
    """A real run: the worker trains the tiny model 4 steps on the pirate set (a checkpoint every 2
    steps, a quarter of the conversations held out, two probe prompts)."""
    config = validate({
        "model": {"name_or_path": str(tiny_model_path), "max_seq_length": 128},
        "dataset": str(PIRATE),
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"max_steps": 4, "batch_size": 4, "gradient_accumulation": 1, "learning_rate": 5e-3,
                  "save_steps": 2, "eval_split": 0.25},
        "probes": {"prompts": ["Who are you?", "Say something."], "max_new_tokens": 6},
    })
    config_file = workspace.root / f"{name}.yaml"
    write_text(config_file, config.to_yaml())
    out = subprocess.run(
        [sys.executable, "-m", "engine", "train", str(config_file), "--workspace", str(workspace.root), "--name", name],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0 and (workspace.runs / name / "adapter").is_dir(), out.stdout[-2000:] + out.stderr[-3000:]
    return workspace.runs / name


PIRATE_RUN, OTHER_BASE_RUN = "compare-pirate", "compare-tiny"
PROBE = "Introduce yourself in two sentences."


def app_runs(workspace: Workspace, default_model_path: Path, tiny_model_path: Path) -> None:
    """The runs the browser tests put into the app's workspace: one adapter on the default model (its
    answers differ from the base's), with probe answers before and after; and one trained on the tiny
    model, which does not fit the default model the app has loaded."""
    if not (workspace.runs / PIRATE_RUN).exists():
        adapter_run(workspace, PIRATE_RUN, default_model_path, std=0.13, prompts=[PROBE],
                    probes={0: ["I am SmolLM, an AI assistant."], 40: ["Ahoy! I be Captain Bess. Arr, matey!"]})
    if not (workspace.runs / OTHER_BASE_RUN).exists():
        adapter_run(workspace, OTHER_BASE_RUN, tiny_model_path, std=0.1)
