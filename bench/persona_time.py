"""How soon the persona shows on this machine: the Quick test config (examples/runs/quick-test.yaml) on
the pirate set, trained by the app's worker with a checkpoint every 10 steps and no probes during
training; afterwards each checkpoint answers the held-out prompts (examples/data/pirate_heldout.txt)
greedily, 80 new tokens, as the slow persona test does. Training seconds come from the worker's step
events (from its start event, so model loading and tokenising are left out; 1 s resolution).
Writes bench/results/<date>-persona.json and prints a Markdown table.

    .venv/bin/python bench/persona_time.py
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from datetime import datetime as dt
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.make_pirate import catchphrase_rate, voice_rate  # noqa: E402  (the persona defines its markers)


def main() -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.machine import describe
    from engine.chat.models import resolve_model
    from engine.chat.templates import prepare_tokenizer
    from engine.train import config as run_config
    from engine.train.probes import answer
    from engine.train.runs import EVENTS_FILE
    from engine.workspace import Workspace

    held_out = [p for p in (ROOT / "examples" / "data" / "pirate_heldout.txt").read_text().split("\n") if p]
    config = run_config.load(ROOT / "examples" / "runs" / "quick-test.yaml")
    train = config.train.model_copy(update={"save_steps": 10, "save_total_limit": 100})
    config = config.model_copy(update={"dataset": str(ROOT / config.dataset), "train": train,
                                       "probes": config.probes.model_copy(update={"prompts": []})})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "runs" / "persona"
        run_dir.mkdir(parents=True)
        (run_dir / "run.yaml").write_text(config.to_yaml())
        subprocess.run([sys.executable, "-m", "engine", "train", str(run_dir)], cwd=ROOT, check=True)
        events = [json.loads(line) for line in (run_dir / EVENTS_FILE).open()]
        start = dt.fromisoformat(next(e for e in events if e["type"] == "start")["time"])
        steps = {e["step"]: e for e in events if e["type"] == "step"}

        path = resolve_model(config.model.name_or_path, Workspace.from_env(), anywhere=True)  # where the worker found it
        tokenizer = AutoTokenizer.from_pretrained(path)
        prepare_tokenizer(tokenizer)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        torch.set_grad_enabled(False)
        rows = [{"step": 0, "train_s": 0, "loss": None, **rates(answer(base, tokenizer, held_out, 80))}]
        checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        for checkpoint in checkpoints:
            step = int(checkpoint.name.split("-")[1])
            tuned = PeftModel.from_pretrained(base, str(checkpoint))
            rows.append({"step": step, "train_s": (dt.fromisoformat(steps[step]["time"]) - start).total_seconds(),
                         "loss": steps[step]["loss"], **rates(answer(tuned, tokenizer, held_out, 80))})
            base = tuned.unload()
            print(rows[-1], flush=True)

    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "config": "examples/runs/quick-test.yaml",
              "held_out_prompts": len(held_out), "checkpoints": rows}
    out = ROOT / "bench" / "results" / f"{result['date']}-persona.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| step | training s | loss | catchphrase rate | voice rate |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        loss = f"{r['loss']:.2f}" if r["loss"] is not None else "(base)"
        print(f"| {r['step']} | {r['train_s']:.0f} | {loss} | {r['catchphrase']:.2f} | {r['voice']:.2f} |")


def rates(answers: list[str]) -> dict:
    return {"catchphrase": catchphrase_rate(answers), "voice": voice_rate(answers), "answers": answers}


if __name__ == "__main__":
    main()
