"""Comparisons and blind votes, saved with the run as `RUN/comparisons.jsonl` (one JSON object a
line: a "comparison", or a "vote" naming the comparison it judges), and the win rates they add up to.
Each line is checked against its record model when read: a damaged line, or one of the wrong shape,
is left out and the rest is shown."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.compare.sides import BASE
from engine.files import append_jsonl, now, read_jsonl
from engine.i18n import msg
from engine.train.runs import load_run, run_dir
from engine.workspace import Workspace

COMPARISONS_FILE = "comparisons.jsonl"
CHOICES = ("a", "b", "tie")

_write = threading.Lock()  # appends from several requests never interleave


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields a later version adds are kept


class Message(_Record):
    role: str
    content: str


class ComparisonRecord(_Record):
    """One prompt answered by two sides, or three (engine.compare.comparison.Comparison.record)."""

    type: Literal["comparison"]
    id: str
    time: str
    source: str = "typed"
    messages: list[Message] = Field(min_length=1)
    sides: tuple[str, str] | tuple[str, str, str]
    labels: dict[str, str] = {}
    preset: str = ""
    sampling: dict[str, Any] = {}
    blind: bool = False
    shown: tuple[str, str] | tuple[str, str, str]
    replies: dict[str, str] = {}
    stats: dict[str, str] = {}
    runs: list[str] = []


class VoteRecord(_Record):
    """A blind vote on a comparison: the letter chosen, and the side it named (None: a tie)."""

    type: Literal["vote"]
    time: str
    comparison: str
    choice: Literal["a", "b", "tie"]
    pair: tuple[str, str]
    winner: str | None


_RECORD = TypeAdapter(Annotated[ComparisonRecord | VoteRecord, Field(discriminator="type")])


class VoteError(ValueError):
    """A vote that cannot be counted; the message says why."""


def save(workspace: Workspace, runs: list[str], record: dict) -> None:
    """Append a record to the comparisons of every run it involves."""
    with _write:
        for name in dict.fromkeys(runs):
            append_jsonl(run_dir(workspace, name) / COMPARISONS_FILE, record)


def records(path: Path) -> list[dict]:
    """The run's comparison and vote records that have their record's shape, oldest first."""
    found = []
    for raw in read_jsonl(Path(path) / COMPARISONS_FILE):
        try:
            found.append(_RECORD.validate_python(raw).model_dump(mode="json"))
        except ValidationError:
            continue
    return found


def history(path: Path, limit: int = 50) -> list[tuple[dict, dict | None]]:
    """The run's latest comparisons, newest first, each with the latest vote on it (None: no vote)."""
    saved = records(path)
    votes = {r["comparison"]: r for r in saved if r["type"] == "vote"}
    comparisons = [r for r in saved if r["type"] == "comparison"][-limit:]
    return [(r, votes.get(r["id"])) for r in reversed(comparisons)]


def vote(workspace: Workspace, comparison: dict, choice: str) -> dict:
    """Record a blind vote on a saved comparison: 'a', 'b' (the answer shown under that letter) or 'tie'."""
    if choice not in CHOICES:
        raise VoteError(msg("A vote is 'a', 'b' or 'tie' (got {choice!r}).", choice=choice))
    if not comparison.get("blind"):
        raise VoteError(msg("Only blind comparisons take votes: turn on blind mode and compare again."))
    shown = comparison["shown"]
    record = {
        "type": "vote", "time": now(), "comparison": comparison["id"], "choice": choice,
        "pair": reference_first(workspace, *comparison["sides"]),
        "winner": None if choice == "tie" else shown[CHOICES.index(choice)],
    }
    save(workspace, comparison["runs"], record)
    return record


def pair(left: str, right: str) -> list[str]:
    """[reference, challenger]: the base model is always the reference; otherwise the order chosen
    (the left side is what the right one is measured against)."""
    return [right, left] if right == BASE else [left, right]


def reference_first(workspace: Workspace, left: str, right: str) -> list[str]:
    """`pair`, except that a preference run compared with the run it started from (its supervised
    adapter) is always the challenger: its win rate is against the supervised adapter."""
    order = pair(left, right)
    if order[0] != BASE and _started_from(workspace, order[0]) == order[1].partition(":")[0]:
        return order[::-1]
    return order


def _started_from(workspace: Workspace, spec: str) -> str:
    try:
        return load_run(workspace, spec.partition(":")[0]).config.preference.start_from
    except ValueError:  # a run gone or with an unreadable run.yaml: no such relation to honour
        return ""


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
        votes = msg("{n} vote", n=self.count) if self.count == 1 else msg("{n} votes", n=self.count)
        ties = msg("{n} tie", n=self.ties) if self.ties == 1 else msg("{n} ties", n=self.ties)
        return msg("**{challenger}** vs **{reference}**: win rate {rate} of {votes} ({wins} won, {losses} lost, "
                   "{ties}; a tie counts half)", challenger=label(self.challenger), reference=label(self.reference),
                   rate=f"{self.win_rate:.0%}", votes=votes, wins=self.wins, losses=self.losses, ties=ties)


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
