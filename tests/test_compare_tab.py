"""The Compare tab's handlers called as plain functions, without a browser: the lists follow the
workspace and keep the person's choices, a comparison streams both columns and is saved, Stop and
blind votes, and the API's function. The tiny model and real adapters (tests/compare_runs.py)."""

from __future__ import annotations

import gradio as gr
import pytest

from engine.chat.models import ModelManager
from engine.compare import sides, store
from tests.compare_runs import adapter_run
from ui import compare_tab
from ui.context import Context


@pytest.fixture(scope="module")
def ctx(new_workspace, tiny_model_path):
    manager = ModelManager(new_workspace("compare-tab", model=False))
    manager.load(str(tiny_model_path))
    return Context(manager.workspace, manager, manager.hardware)


def session(name: str) -> gr.Request:
    return gr.Request(session_hash=name)


def compare_args(run: str, prompt: str = "Tell me about the sea.", preset: str = "Precise", blind: bool = False):
    return [run, sides.BASE, run, "", None, [], prompt, preset, 12, "", blind, True]  # the last: the thinking switch


def test_the_lists_follow_the_workspace_and_keep_the_choice(ctx, tiny_model_path):
    run, left, right, third, found, example, reference, *_ = compare_tab.refresh(ctx, None, None, None, None, None)
    assert run.value is None and run.choices == [] and reference == compare_tab.NO_ADAPTER

    # A run that got an adapter since: chosen by itself (no Refresh button), base against its final adapter.
    adapter_run(ctx.workspace, "first", tiny_model_path, std=0.3, prompts=["Who are you?"],
                probes={0: ["I am a model."], 2: ["Arr, I be a pirate."]})
    run, left, right, third, found, example, reference, table, note, *_ = compare_tab.refresh(ctx, None, None, None,
                                                                                             None, None)
    assert run.value == "first" and (left.value, right.value) == (sides.BASE, "first")
    assert "No run has an adapter" not in reference and [e["messages"][-1]["content"] for e in found] == ["Who are you?"]
    assert table.values.tolist() == [["Who are you?", "I am a model.", "Arr, I be a pirate."]] and "after step 2" in note
    assert "greed" not in note and "most likely next word" in note

    # A newer run appears in the lists; the person's choices stay.
    adapter_run(ctx.workspace, "second", tiny_model_path, std=0.3)
    run, left, right, *_ = compare_tab.refresh(ctx, "first", sides.BASE, "first", "", 0)
    assert run.value == "first" and [c[0] if isinstance(c, tuple) else c for c in run.choices] == ["second", "first"]
    assert right.value == "first" and ("second · final adapter", "second") in right.choices

    # A run without an adapter is not listed; a chosen run that is gone gives way to the newest.
    (ctx.workspace.runs / "bare").mkdir()
    (ctx.workspace.runs / "bare" / "run.yaml").write_text((ctx.workspace.runs / "first" / "run.yaml").read_text())
    run, left, right, *_ = compare_tab.refresh(ctx, "gone", sides.BASE, "gone", "", None)
    assert "bare" not in [c[0] if isinstance(c, tuple) else c for c in run.choices]
    assert run.value == "second" and right.value == "second"


def test_a_comparison_streams_both_columns_and_is_saved_with_the_run(ctx, tiny_model_path):
    adapter_run(ctx.workspace, "streamed", tiny_model_path, std=0.5, seed=3)
    outputs = list(compare_tab.run_compare(ctx, *compare_args("streamed", preset="Leaderboard"), session("one")))
    a, b, c, votes, message, pending, *_ = outputs[-1]
    assert a.value and b.value and a.value != b.value and a.label == sides.BASE_LABEL
    assert any(o[0].value and o[1].value and (o[0].value, o[1].value) != (a.value, b.value) for o in outputs[:-1])
    assert "saved with the run" in message and "stopped at the length limit of 12 tokens" in message
    assert "finished:" not in message and pending is None and votes.visible is False and c.visible is False
    [record] = store.records(ctx.workspace.runs / "streamed")
    assert record["replies"] == {"base": a.value, "streamed": b.value}


def test_stop_ends_both_sides_and_nothing_is_saved(ctx, tiny_model_path):
    adapter_run(ctx.workspace, "stopped", tiny_model_path, std=0.5, seed=4)
    args = compare_args("stopped", preset="Leaderboard")
    args[8] = 1000
    stream = compare_tab.run_compare(ctx, *args, session("stopper"))
    next(stream)
    compare_tab.stop(ctx, session("stopper"))
    *_, last = stream
    assert last[4] == "Stopped: this comparison was not saved."
    assert not (ctx.workspace.runs / "stopped" / store.COMPARISONS_FILE).exists()


def test_a_preference_run_is_compared_beside_the_supervised_run_it_started_from(ctx, tiny_model_path):
    adapter_run(ctx.workspace, "sft", tiny_model_path, std=0.5, seed=7)
    adapter_run(ctx.workspace, "dpo", tiny_model_path, std=0.5, seed=8,
                settings={"method": "dpo", "preference": {"start_from": "sft"}})
    left, right, third, *_ = compare_tab.show_run(ctx, "dpo")
    assert (left.value, right.value, third.value) == (sides.BASE, "dpo", "sft")  # chosen by itself
    assert compare_tab.show_run(ctx, "sft")[2].value == compare_tab.NO_THIRD  # a supervised run: two sides

    args = compare_args("dpo", preset="Leaderboard")
    args[3] = "sft"
    a, b, c, votes, message, pending, rates, saved = list(compare_tab.run_compare(ctx, *args, session("three")))[-1]
    assert (a.label, b.label, c.label) == (sides.BASE_LABEL, sides.label_of("dpo"), sides.label_of("sft"))
    assert c.visible and len({a.value, b.value, c.value}) == 3 and "on all three sides" in message
    [record] = store.records(ctx.workspace.runs / "sft")  # saved with every run it involves
    assert record["sides"] == ["base", "dpo", "sft"] and record["replies"]["sft"] == c.value
    assert saved.iloc[0, 3] == f"{sides.label_of('dpo')} | {sides.label_of('sft')}"

    with pytest.raises(ValueError, match="Blind mode compares two answers"):
        next(compare_tab.run_compare(ctx, *compare_args("dpo", blind=True)[:3], "sft",
                                     *compare_args("dpo", blind=True)[4:], session("three")))


def test_a_blind_vote_reveals_the_sides_and_counts(ctx, tiny_model_path):
    adapter_run(ctx.workspace, "blind", tiny_model_path, std=0.5, seed=5)
    with pytest.raises(gr.Error, match="no blind comparison waiting"):
        compare_tab.vote(ctx, "a", None, [], "blind")
    *_, last = compare_tab.run_compare(ctx, *compare_args("blind", blind=True), session("voter"))
    a, b, c, votes, message, pending, *_ = last
    assert (a.label, b.label) == ("Answer A", "Answer B") and votes.visible and "Which is better?" in message
    result, votes, pending_after, mine, rates, saved, a, b = compare_tab.vote(ctx, "a", pending, [], "blind")
    winner = sides.label_of(pending["shown"][0])
    assert f"you chose **{winner}**" in result and pending_after is None and len(mine) == 1
    assert "win rate 100% of 1 vote" in rates if pending["shown"][0] == "blind" else "win rate 0% of 1 vote" in rates
    assert saved.iloc[0, -1] == f"{winner} won" and a.label.startswith("A: ")


def test_the_api_function_compares_a_run_with_the_base(ctx, tiny_model_path):
    adapter_run(ctx.workspace, "api", tiny_model_path, std=0.5, seed=6)
    base, tuned = compare_tab.compare_api(ctx, "Who are you?", "api", "Leaderboard", 8)
    assert base != tuned
    assert store.records(ctx.workspace.runs / "api")[-1]["replies"] == {"base": base, "api": tuned}
