"""Supervised, then DPO, on the pirate persona: which pairs and settings raise the catchphrase rate on
held-out prompts above the supervised adapter's without greedy answers collapsing into repeating it.
The supervised run is one epoch of the Quick test (examples/runs/quick-test.yaml); each DPO run starts
from its adapter through the app's worker; every checkpoint answers the held-out prompts greedily.
Writes bench/results/<date>-pirate-dpo.json and prints a Markdown table.

    .venv/bin/python bench/pirate_dpo.py [--sft-steps 27] [--dpo-steps 18] [--tokens 128]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.make_pirate import catchphrase_rate, voice_rate  # noqa: E402
from examples.pirate_pairs import HELDOUT16, loops, write  # noqa: E402

SETTINGS = [("ending", 1e-4), ("ending", 5e-5)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sft-steps", type=int, default=27)
    parser.add_argument("--dpo-steps", type=int, default=18)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--settings", default=",".join(f"{k}:{lr}" for k, lr in SETTINGS))
    args = parser.parse_args()
    settings = [(k, float(lr)) for k, lr in (s.split(":") for s in args.settings.split(","))]

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.machine import describe
    from engine.chat.models import resolve_model
    from engine.chat.templates import prepare_tokenizer
    from engine.data.store import import_file
    from engine.train import config as run_config
    from engine.train import runs
    from engine.train.probes import answer
    from engine.workspace import Workspace

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.from_env(Path(tmp) / "workspace")
        path = resolve_model("default", ws, anywhere=True)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path))
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)

        def rate(adapter: Path | None, label: str, **extra) -> None:
            nonlocal base
            model = PeftModel.from_pretrained(base, str(adapter)) if adapter else base
            with torch.no_grad():
                answers = answer(model, tokenizer, HELDOUT16, args.tokens)
            if adapter:
                base = model.unload()
            rows.append({"run": label, **extra, "catchphrase": catchphrase_rate(answers), "loops": loops(answers),
                         "voice": voice_rate(answers), "answers": answers})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "answers"}), flush=True)

        def train(name: str, data: dict) -> runs.Run:
            started = time.time()
            runs.start_run(ws, run_config.validate(data), name=name)
            while (run := runs.load_run(ws, name)).live:
                time.sleep(2)
            assert run.state == "completed", run.log_file.read_text()[-3000:]
            print(f"{name}: {time.time() - started:.0f} s", flush=True)
            return run

        quick = run_config.load(ROOT / "examples" / "runs" / "quick-test.yaml").model_dump(mode="json")
        quick.update(dataset=str(ROOT / quick["dataset"]), probes={"prompts": [], "max_new_tokens": 8})
        quick["train"].update(max_steps=args.sft_steps, save_steps=1000)
        sft = train("sft", quick)
        rate(sft.adapter, "supervised", steps=args.sft_steps)

        for kind, lr in settings:
            if not (ws.datasets / kind).exists():
                import_file(ws, kind, write(Path(tmp) / f"{kind}.jsonl", kind))
            dpo = json.loads(json.dumps(quick))
            dpo.update(method="dpo", dataset=kind, preference={"start_from": "sft", "beta": 0.1})
            save = max(1, args.dpo_steps // 2)
            dpo["train"].update(max_steps=args.dpo_steps, learning_rate=lr, save_steps=save, save_total_limit=10)
            name = f"dpo-{kind}-{lr:g}"
            run = train(name, dpo)
            margins = {e["step"]: e.get("reward_margin") for e in run.events if e["type"] == "step"}
            for checkpoint in sorted(run.checkpoints, key=lambda c: int(c.name.split("-")[1])):
                step = int(checkpoint.name.split("-")[1])
                rate(checkpoint, name, pairs=kind, lr=lr, step=step, margin=margins.get(step))

    result = {"date": datetime.date.today().isoformat(), "machine": describe(), "sft_steps": args.sft_steps,
              "dpo_steps": args.dpo_steps, "new_tokens": args.tokens, "held_out": HELDOUT16, "rows": rows}
    out = ROOT / "bench" / "results" / f"{result['date']}-pirate-dpo.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("\n| run | step | catchphrase | loops | voice | margin |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['run']} | {r.get('step', r.get('steps'))} | {r['catchphrase']:.2f} | {r['loops']} | "
              f"{r['voice']:.2f} | {r.get('margin') or ''} |")


if __name__ == "__main__":
    main()
