"""Comparison and vote records read back from a run's comparisons.jsonl: a damaged line, or a line
of valid JSON with the wrong shape, is left out, and the rest still adds up (Compare's page and its
win rates never break on one bad line)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.compare import sides, store
from engine.compare.comparison import Comparison
from engine.chat.sampling import Sampling
from engine.train import presets, runs

PIRATE = str(Path(__file__).resolve().parent.parent / "examples" / "data" / "pirate.jsonl")


def test_damaged_and_wrong_shape_lines_are_left_out_and_the_rest_counts(workspace):
    run = runs.create_run(workspace, presets.build("quick-test", PIRATE), name="judged")
    tuned = sides.Side("judged", sides.label_of("judged"), "judged", run.path / "adapter")
    comparison = Comparison([{"role": "user", "content": "Ahoy?"}], sides.BASE_SIDE, tuned, Sampling(), "Precise",
                            blind=True, shown=(tuned, sides.BASE_SIDE), replies={"base": "Hello.", "judged": "Arr!"})
    record = comparison.record()
    store.save(workspace, ["judged"], record)
    store.vote(workspace, record, "a")  # A was the fine-tune
    with open(run.path / store.COMPARISONS_FILE, "a", encoding="utf-8") as f:
        f.write('{"type": "comparison", "id": "cut in ha\n')  # damaged JSON
        for wrong in ([], {"type": "comparison"}, {**record, "messages": "Ahoy?"}, {**record, "sides": ["base"]},
                      {"type": "vote", "comparison": record["id"], "choice": "left", "pair": ["base", "judged"],
                       "winner": "judged", "time": "now"},
                      {"type": "opinion", "text": "nice"}):
            f.write(json.dumps(wrong) + "\n")

    kept = store.records(run.path)
    assert [r["type"] for r in kept] == ["comparison", "vote"] and kept[0]["id"] == record["id"]
    [(shown, vote)] = store.history(run.path)
    assert shown["replies"] == {"base": "Hello.", "judged": "Arr!"} and vote["winner"] == "judged"
    [tally] = store.win_rates(run.path)
    assert (tally.challenger, tally.wins, tally.count) == ("judged", 1, 1)
    runs.update_status(run.path, state="stopped")
