"""Preference pairs from the pirate persona set, for DPO. Each conversation's last reply, which ends with
the catchphrase, is the chosen one. Kinds of pairs, by what the rejected reply is:

- `catchphrase`: the same reply without the catchphrase, so the pairs teach only the ending;
- `ending`: those, plus the reply with the catchphrase said three more times (say it once, then stop)
  and the reply without it that goes on by saying its sentences again (end with it, not ramble on).

Used by the preference test on the default model and the CPU DPO benchmarks.

    python examples/pirate_pairs.py OUT.jsonl [KIND]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from examples.make_pirate import CATCHPHRASE, HELDOUT

PIRATE = Path(__file__).resolve().parent / "data" / "pirate.jsonl"
PAIR_KINDS = ("catchphrase", "ending")
# The persona's 8 held-out prompts and 8 more everyday ones, none in the training set: with 16, one answer
# moves a rate by 6%, small enough to see what a short preference run changes.
HELDOUT16 = HELDOUT + [
    "How do I write a thank-you note?", "What should I pack for a day at the beach?", "How do I change a light bulb?",
    "What is a good name for a goldfish?", "How do I make pancakes?", "Why do cats purr?",
    "How do I write a polite email?", "What is a rainbow?"]


def loops(answers: list[str]) -> int:
    """Answers that say the catchphrase more than twice: a reply collapsing into repeating it."""
    return sum(a.count(CATCHPHRASE.rstrip("!")) > 2 for a in answers)


def _conversations() -> list[list[dict]]:
    return [json.loads(line)["messages"] for line in PIRATE.read_text(encoding="utf-8").splitlines()]


def _pair(prompt: list[dict], chosen: str, rejected: str) -> dict:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def pairs_of(kind: str = "catchphrase") -> list[dict]:
    if kind not in PAIR_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PAIR_KINDS)}, not {kind!r}")
    pairs = []
    for messages in _conversations():
        prompt, reply = messages[:-1], messages[-1]["content"]
        bare = reply.replace(CATCHPHRASE, "").strip()
        pairs.append(_pair(prompt, reply, bare))
        if kind == "ending":
            pairs.append(_pair(prompt, reply, " ".join([reply] + [CATCHPHRASE] * 3)))
            pairs.append(_pair(prompt, reply, f"{bare} {bare}"))
    return pairs


def write(path: Path, kind: str = "catchphrase") -> Path:
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs_of(kind)), encoding="utf-8")
    return path


if __name__ == "__main__":
    write(Path(sys.argv[1]), *sys.argv[2:3])
