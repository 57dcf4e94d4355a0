"""Preference pairs from the pirate persona set, for DPO: each conversation's last reply as the chosen
one, the same reply without the catchphrase as the rejected one, so the pairs teach only the ending.
Used by the preference test on the default model and the CPU DPO benchmark.

    python examples/pirate_pairs.py OUT.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from examples.make_pirate import CATCHPHRASE

PIRATE = Path(__file__).resolve().parent / "data" / "pirate.jsonl"


def catchphrase_pairs() -> list[dict]:
    pairs = []
    for line in PIRATE.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        reply = messages[-1]["content"]
        pairs.append({"prompt": messages[:-1], "chosen": [{"role": "assistant", "content": reply}],
                      "rejected": [{"role": "assistant", "content": reply.replace(CATCHPHRASE, "").strip()}]})
    return pairs


def write(path: Path) -> Path:
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in catchphrase_pairs()), encoding="utf-8")
    return path


if __name__ == "__main__":
    write(Path(sys.argv[1]))
