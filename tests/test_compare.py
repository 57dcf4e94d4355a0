"""Compare in the engine: the base and an adapter on one resident model with the same preset and
seed, runs and checkpoints as sides, held-out rows and probes, saved comparisons, votes and win
rates, and adapters that do not fit the loaded base."""

from __future__ import annotations

import pytest

from engine import compare
from engine.compare import prompts, sides, store
from engine.chat.models import ModelError, ModelManager
from engine.chat.sampling import Sampling
from engine.train.runs import RunError, load_run
from tests.compare_runs import adapter_run, trained_run

HELLO = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture(scope="module")
def tiny_manager(new_workspace, tiny_model_path):
    manager = ModelManager(new_workspace("compare", model=False))
    manager.load(str(tiny_model_path))
    return manager


@pytest.fixture(scope="module")
def trained(tiny_manager, tiny_model_path):
    """A real run of the training worker, shared by the tests below that read one."""
    return load_run(tiny_manager.workspace, trained_run(tiny_manager.workspace, "trained", tiny_model_path).name)


def answers(manager, right: str, sampling: Sampling) -> tuple[str, str, compare.Comparison]:
    comparison = compare.prepare(manager, manager.workspace, HELLO, sides.BASE, right, sampling, "Leaderboard")
    for _ in compare.stream(manager, comparison):
        pass
    assert comparison.finished
    return comparison.reply(comparison.left), comparison.reply(comparison.right), comparison


def test_zero_lora_weights_answer_like_the_base_and_nonzero_ones_differ(tiny_manager, tiny_model_path):
    adapter_run(tiny_manager.workspace, "zero", tiny_model_path, std=0.0)
    adapter_run(tiny_manager.workspace, "nonzero", tiny_model_path, std=0.5)
    base_weights = tiny_manager.loaded.model.get_parameter("model.layers.0.self_attn.q_proj.weight")
    base_count = sum(p.numel() for p in tiny_manager.loaded.model.parameters())
    sampling = compare.sampling_for("Leaderboard", max_new_tokens=12)
    assert sampling.seed is not None  # drawn once, used on both sides

    base, tuned, comparison = answers(tiny_manager, "zero", sampling)
    assert base and tuned == base
    assert comparison.record()["sampling"]["seed"] == sampling.seed

    base_again, tuned, _ = answers(tiny_manager, "nonzero", sampling)
    assert base_again == base  # the same seed and preset: the base side repeats itself
    assert tuned != base

    # The adapters sit on the one loaded base: its weights are the same tensor, not a second copy.
    model = tiny_manager.loaded.model
    assert model.get_base_model().get_parameter("model.layers.0.self_attn.q_proj.base_layer.weight") is base_weights
    assert sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name) == base_count
    assert tiny_manager.loaded.active_adapter is None  # attaching for a comparison chose nothing for anyone else


def test_both_sides_answer_at_once_and_each_as_it_would_alone(tiny_manager, tiny_model_path):
    """One batch on the one model: both columns grow together, and each side's text is the one it gives
    answering alone, greedy and sampled with the seed (the same random draws on both sides)."""
    ws = tiny_manager.workspace
    adapter_run(ws, "batched", tiny_model_path, std=0.5, seed=5)
    adapter = sides.activate(tiny_manager, sides.parse(ws, "batched"))
    for sampling in (compare.sampling_for("Precise", 40), compare.sampling_for("Leaderboard", 40, seed=11)):
        comparison = compare.prepare(tiny_manager, ws, HELLO, sides.BASE, "batched", sampling, "Leaderboard")
        seen = list(compare.stream(tiny_manager, comparison))
        alone = [tiny_manager.generate(HELLO, sampling, adapter=name).text for name in (None, adapter)]
        assert comparison.finished and [comparison.reply(comparison.left), comparison.reply(comparison.right)] == alone
        assert seen[-1][:2] == tuple(alone) and alone[0] != alone[1]
        if not sampling.greedy:  # the tiny random model's greedy base answer is special tokens only
            assert any(a and b and (a, b) != tuple(alone) for a, b, _ in seen[:-1]), "the columns did not grow together"
        assert all("stopped at the length limit of 40 tokens" in comparison.stats[s] for s in ("base", "batched"))


def test_a_comparison_asked_while_a_chat_is_written_joins_its_batch(tiny_manager, tiny_model_path):
    ws = tiny_manager.workspace
    adapter_run(ws, "queued", tiny_model_path, std=0.5, seed=6)
    comparison = compare.prepare(tiny_manager, ws, HELLO, sides.BASE, "queued", compare.sampling_for("Precise", 8),
                                 "Precise")
    ahead = tiny_manager.stream(HELLO, Sampling.parse(temperature=0.8, seed=1, max_new_tokens=4000), adapter=None)
    next(ahead)  # a chat is being written
    tiny_manager.serving.peak = 0
    *_, last = compare.stream(tiny_manager, comparison)
    assert last[2] == "" and comparison.finished
    assert tiny_manager.serving.peak == 3  # the chat's row and both sides (base and adapter) in one step
    ahead.close()


def test_real_run_gives_sides_prompts_before_after_and_saved_comparisons(tiny_manager, trained):
    specs = [s.spec for s in sides.of_run(trained)]
    assert specs == ["trained", "trained:checkpoint-4", "trained:checkpoint-2"]
    assert [s.spec for s in sides.available(tiny_manager.workspace)][0] == sides.BASE

    held = prompts.held_out(trained, tiny_manager.workspace)
    assert len(held) == 27  # a quarter of the 108 pirate conversations, cut before their last reply
    assert all(e.messages[-1]["role"] == "user" and e.reference.endswith("Arr, matey!") for e in held)
    assert [e.prompt for e in prompts.probes(trained)] == ["Who are you?", "Say something."]
    step, rows = prompts.before_after(trained)
    assert step == 4 and [r[0] for r in rows] == ["Who are you?", "Say something."]

    # Checkpoint against the final adapter, on a held-out row with its earlier turns.
    sampling = compare.sampling_for("Precise", max_new_tokens=6)
    comparison = compare.prepare(tiny_manager, tiny_manager.workspace, list(held[0].messages), "trained:checkpoint-2",
                                 "trained", sampling, "Precise", blind=True, source="held-out")
    assert {s.spec for s in comparison.shown} == {"trained:checkpoint-2", "trained"}
    for _ in compare.stream(tiny_manager, comparison):
        pass
    record = compare.save(tiny_manager.workspace, comparison)
    saved = store.records(trained.path)
    assert saved[-1]["id"] == record["id"] and saved[-1]["source"] == "held-out" and saved[-1]["blind"]
    assert saved[-1]["messages"] == list(held[0].messages)

    # The API's function: base against a run, saved with the run.
    base, tuned = compare.compare(tiny_manager, tiny_manager.workspace, "Who are you?", "trained", "Precise", 6)
    last = store.records(trained.path)[-1]
    assert last["source"] == "api" and last["replies"] == {"base": base, "trained": tuned}


def test_blind_votes_add_up_to_a_win_rate_with_its_count(tiny_manager, tiny_model_path):
    path = adapter_run(tiny_manager.workspace, "voted", tiny_model_path, std=0.5, seed=1)
    sampling = compare.sampling_for("Leaderboard", max_new_tokens=3)
    records = []
    for _ in range(4):
        comparison = compare.prepare(tiny_manager, tiny_manager.workspace, HELLO, sides.BASE, "voted", sampling,
                                     "Leaderboard", blind=True)
        for _ in compare.stream(tiny_manager, comparison):
            pass
        records.append(compare.save(tiny_manager.workspace, comparison))
    letter = {True: "a", False: "b"}  # the letter the tuned answer was shown under
    store.vote(tiny_manager.workspace, records[0], letter[records[0]["shown"][0] == "voted"])  # tuned wins
    store.vote(tiny_manager.workspace, records[1], letter[records[1]["shown"][0] == "voted"])  # tuned wins
    store.vote(tiny_manager.workspace, records[2], letter[records[2]["shown"][0] != "voted"])  # base wins
    store.vote(tiny_manager.workspace, records[3], "tie")
    [tally] = store.win_rates(path)
    assert (tally.reference, tally.challenger) == ("base", "voted")
    assert (tally.wins, tally.losses, tally.ties, tally.count) == (2, 1, 1, 4)
    assert tally.win_rate == pytest.approx(0.625)
    assert "win rate 62% of 4 votes" in tally.summary()

    store.vote(tiny_manager.workspace, records[3], letter[records[3]["shown"][0] == "voted"])  # changed its mind
    [tally] = store.win_rates(path)
    assert (tally.wins, tally.ties, tally.count) == (3, 0, 4)

    with pytest.raises(store.VoteError, match="'a', 'b' or 'tie'"):
        store.vote(tiny_manager.workspace, records[0], "left")
    open_record = {**records[0], "blind": False}
    with pytest.raises(store.VoteError, match="Only blind comparisons"):
        store.vote(tiny_manager.workspace, open_record, "a")


def test_a_pair_compared_both_ways_round_is_one_tally():
    def vote(i, pair, winner):
        return {"type": "vote", "comparison": str(i), "pair": pair, "winner": winner}

    votes = [vote(1, ["run:checkpoint-2", "run"], "run"), vote(2, ["run", "run:checkpoint-2"], "run"),
             vote(3, ["run", "run:checkpoint-2"], None), vote(4, store.pair("other", sides.BASE), "other")]
    first, second = store.tally(votes)
    assert (first.reference, first.challenger, first.wins, first.losses, first.ties) == ("run:checkpoint-2", "run", 2, 0, 1)
    assert (second.reference, second.challenger, second.wins) == (sides.BASE, "other", 1)


def test_an_adapter_of_another_base_is_refused_and_the_model_stays_as_it_was(workspace, tiny_model_path,
                                                                              default_model_path):
    adapter_run(workspace, "tiny-run", tiny_model_path, std=0.1)
    manager = ModelManager(workspace)
    manager.load(str(default_model_path))
    model = manager.loaded.model
    precise = compare.sampling_for("Precise", max_new_tokens=8)
    before = manager.generate(HELLO, precise).text

    with pytest.raises(ModelError, match=r"'tiny-run · final adapter' does not fit the loaded model .*: its layer .* takes 128 inputs, the model's takes \d+. It was trained on '.*tiny-llama'"):
        compare.prepare(manager, workspace, HELLO, sides.BASE, "tiny-run", precise, "Precise")
    assert manager.loaded.model is model and not hasattr(model, "peft_config") and manager.loaded.adapters == {}
    assert manager.generate(HELLO, precise).text == before
    assert not (workspace.runs / "tiny-run" / store.COMPARISONS_FILE).exists()


def test_plain_messages_for_sides_that_cannot_be_compared(tiny_manager, tiny_model_path):
    ws = tiny_manager.workspace
    precise = compare.sampling_for("Precise", max_new_tokens=4)
    with pytest.raises(RunError, match="There is no run named 'nope'"):
        compare.prepare(tiny_manager, ws, HELLO, sides.BASE, "nope", precise, "Precise")
    adapter_run(ws, "same", tiny_model_path)
    with pytest.raises(ModelError, match="Both sides are"):
        compare.prepare(tiny_manager, ws, HELLO, "same", "same", precise, "Precise")
    with pytest.raises(ModelError, match="no checkpoint 'checkpoint-9'"):
        compare.prepare(tiny_manager, ws, HELLO, sides.BASE, "same:checkpoint-9", precise, "Precise")
    with pytest.raises(ModelError, match="Type a prompt"):
        compare.prepare(tiny_manager, ws, [{"role": "user", "content": "  "}], sides.BASE, "same", precise, "Precise")
    (ws.runs / "empty").mkdir()
    (ws.runs / "empty" / "run.yaml").write_text((ws.runs / "same" / "run.yaml").read_text())
    with pytest.raises(ModelError, match="'empty' has no adapter yet"):
        compare.compare(tiny_manager, ws, "hi", "empty", "Precise", 4)
    with pytest.raises(ModelError, match="Name the run"):
        compare.compare(tiny_manager, ws, "hi", "", "Precise", 4)


def test_a_retrained_adapter_is_attached_afresh(tiny_manager, tiny_model_path):
    path = adapter_run(tiny_manager.workspace, "again", tiny_model_path, std=0.5, seed=2)
    side = sides.parse(tiny_manager.workspace, "again")
    first = sides.activate(tiny_manager, side)
    assert sides.activate(tiny_manager, side) == first  # attached once
    adapter_run(tiny_manager.workspace, "again", tiny_model_path, std=0.5, seed=3)  # e.g. resumed and finished again
    second = sides.activate(tiny_manager, sides.parse(tiny_manager.workspace, "again"))
    assert second != first and tiny_manager.loaded.adapters[second] == path / "adapter"


def test_an_adapter_named_like_its_model_attaches(tiny_manager, tiny_model_path):
    """Run names often carry a model's version ("llama-3.2-1b"); peft refuses dots in its own names."""
    path = adapter_run(tiny_manager.workspace, "llama-3.2-1b.pirate", tiny_model_path, std=0.5, seed=4)
    tiny_manager.attach_adapter("llama-3.2-1b.pirate", path / "adapter")
    greedy = Sampling.parse(temperature=0, max_new_tokens=8)
    tuned = tiny_manager.generate(HELLO, greedy, adapter="llama-3.2-1b.pirate").text
    assert tuned != tiny_manager.generate(HELLO, greedy, adapter=None).text
    tiny_manager.use_adapter(None)
