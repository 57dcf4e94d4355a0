"""Probe prompts: answered greedily before training and at each checkpoint, stored in probes.jsonl,
shown as a step x prompt grid (tutorial section 2, "test before fine-tuning", kept for comparison)."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.chat.templates import stop_token_ids
from engine.files import append_jsonl, now, read_jsonl
from engine.train.runs import PROBES_FILE
from engine.train.status import usable_probe


@torch.no_grad()
def answer(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy replies to each prompt as a one-turn chat, in one left-padded batch."""
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        chats = [[{"role": "user", "content": p}] for p in prompts]
        batch = tokenizer.apply_chat_template(
            chats, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
        ).to(model.device)
        stops = stop_token_ids(tokenizer, model.generation_config)
        out = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
            eos_token_id=stops or tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        new = out[:, batch["input_ids"].shape[1]:]
        return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()


def record(run_dir: Path, step: int, model, tokenizer, prompts: list[str], max_new_tokens: int) -> None:
    answers = answer(model, tokenizer, prompts, max_new_tokens)
    append_jsonl(Path(run_dir) / PROBES_FILE, {"time": now(), "step": step, "prompts": prompts, "answers": answers})


def recorded_steps(run_dir: Path) -> set[int]:
    return {r["step"] for r in read_jsonl(Path(run_dir) / PROBES_FILE) if usable_probe(r)}


def grid(records: list[dict]) -> tuple[list[str], list[list]]:
    """(headers, rows): one row per step (the latest answers of a step win), one column per prompt."""
    prompts: list[str] = []
    by_step: dict[int, dict[str, str]] = {}
    for r in records:
        for prompt, reply in zip(r["prompts"], r["answers"]):
            if prompt not in prompts:
                prompts.append(prompt)
            by_step.setdefault(r["step"], {})[prompt] = reply
    rows = [[step, *(by_step[step].get(p, "") for p in prompts)] for step in sorted(by_step)]
    return ["step", *prompts], rows
