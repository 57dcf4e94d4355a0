"""Comparisons and blind votes, saved with the run as `RUN/comparisons.jsonl` (one JSON object a
line: a "comparison", or a "vote" naming the comparison it judges), and the win rates they add up to."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from engine.compare.sides import BASE
from engine.files import append_jsonl, now, read_jsonl
from engine.train.runs import run_dir
from engine.workspace import Workspace

COMPARISONS_FILE = "comparisons.jsonl"
CHOICES = ("a", "b", "tie")

_write = threading.Lock()  # appends from several requests never interleave


class VoteError(ValueError):
    """A vote that cannot be counted; the message says why."""


def save(workspace: Workspace, runs: list[str], record: dict) -> None:
    """Append a record to the comparisons of every run it involves."""
    with _write:
        for name in dict.fromkeys(runs):
            append_jsonl(run_dir(workspace, name) / COMPARISONS_FILE, record)


def records(path: Path) -> list[dict]:
    return read_jsonl(Path(path) / COMPARISONS_FILE)


def vote(workspace: Workspace, comparison: dict, choice: str) -> dict:
    """Record a blind vote on a saved comparison: 'a', 'b' (the answer shown under that letter) or 'tie'."""
    if choice not in CHOICES:
        raise VoteError(f"A vote is 'a', 'b' or 'tie' (got {choice!r}).")
    if not comparison.get("blind"):
        raise VoteError("Only blind comparisons take votes: turn on blind mode and compare again.")
    shown = comparison["shown"]
    record = {
        "type": "vote", "time": now(), "comparison": comparison["id"], "choice": choice,
        "pair": pair(*comparison["sides"]), "winner": None if choice == "tie" else shown[CHOICES.index(choice)],
    }
    save(workspace, comparison["runs"], record)
    return record


def pair(left: str, right: str) -> list[str]:
    """[reference, challenger]: the base model is always the reference; otherwise the order chosen
    (the left side is what the right one is measured against)."""
    return [right, left] if right == BASE else [left, right]


@dataclass(frozen=True)
class Tally:
    reference: str
    challenger: str
    wins: int  # the challenger's
    losses: int
    ties: int

    @property
    def count(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float:
        """The challenger's share of the votes, a tie counting half."""
        return (self.wins + self.ties / 2) / self.count if self.count else 0.0

    def summary(self, label=lambda spec: spec) -> str:
        return (f"**{label(self.challenger)}** vs **{label(self.reference)}**: win rate {self.win_rate:.0%} of "
                f"{self.count} vote{'s' if self.count != 1 else ''} ({self.wins} won, {self.losses} lost, "
                f"{self.ties} tie{'s' if self.ties != 1 else ''}; a tie counts half)")


def tally(votes: list[dict]) -> list[Tally]:
    """Win rates per pair of sides, from vote records; the latest vote on a comparison counts. A pair
    compared both ways round counts as one, in the order it was first voted on."""
    latest = {v["comparison"]: v for v in votes if v.get("type") == "vote"}
    counts: dict[frozenset, tuple[list[str], list[int]]] = {}
    for v in latest.values():
        order, wins_losses_ties = counts.setdefault(frozenset(v["pair"]), (v["pair"], [0, 0, 0]))
        wins_losses_ties[2 if v["winner"] is None else 0 if v["winner"] == order[1] else 1] += 1
    return [Tally(*order, *n) for order, n in counts.values()]


def win_rates(path: Path) -> list[Tally]:
    """The win rates stored with a run."""
    return tally(records(path))
