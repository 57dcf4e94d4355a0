"""The verdict at the end of a run: the loss against the chart's range with what to do, whether the
probe answers changed, and over-fitting signs (looping phrases, one answer to every prompt, a held-out
loss that rose). On a real run the worker trained (the tiny model), and on copies of it with records
added in the run folder's own formats (steps and evaluations in events.jsonl, answers in probes.jsonl)."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.files import append_jsonl, now
from engine.train import verdict
from engine.train.runs import EventLog, PROBES_FILE, load_run, update_status
from tests.compare_runs import PIRATE, trained_run

LOOPING = "Ahoy! Aye, matey! Arr, matey! Arr, matey! Arr, matey!"  # a probe answer of the walk-through's run


@pytest.fixture(scope="module")
def trained(new_workspace, tiny_model_path):
    ws = new_workspace("verdict", model=False)
    trained_run(ws, "tiny", tiny_model_path)
    return ws


@pytest.fixture
def copy(trained):
    """A copy of the trained run, to add records to; the name of the copy."""
    made = []

    def make(name: str) -> str:
        shutil.copytree(trained.runs / "tiny", trained.runs / name)
        made.append(name)
        return name

    yield make
    for name in made:
        shutil.rmtree(trained.runs / name)


def steps(ws, name, losses, first=100):
    """Logged steps after the run's own, with these losses (a run that trained on)."""
    for i, loss in enumerate(losses):
        EventLog(ws.runs / name).write("step", step=first + i, max_steps=first + len(losses), epoch=1.0, loss=loss,
                                       learning_rate=1e-4, memory_gb=1.0, peak_memory_gb=1.0)


def answers(ws, name, step, replies):
    run = load_run(ws, name)
    prompts = run.probes[0]["prompts"]
    append_jsonl(run.path / PROBES_FILE, {"time": now(), "step": step, "prompts": prompts, "answers": replies})


def test_a_finished_run_gets_a_verdict_on_its_loss_and_probes(trained):
    run = load_run(trained, "tiny")
    v = verdict.judge(run)
    losses = [e["loss"] for e in run.current("step")]
    assert v.averaged == 3 and v.loss == pytest.approx(sum(losses[-3:]) / 3)
    assert v.band == "high"  # a random tiny model after 4 steps: far above 1.5
    text = v.markdown()
    assert "How it went" in text and f"{v.loss:.2f}" in text and "0.5 to 1.5" in text and "still high" in text
    assert "More epochs" in text or "higher learning rate" in text
    assert v.probed == 2 and ("for **" in text or "None of the 2 probe answers" in text)


def test_a_run_that_has_not_ended_well_has_no_verdict(trained, copy):
    name = copy("failed")
    update_status(trained.runs / name, state="failed", error="The training process ended unexpectedly.")
    assert verdict.judge(load_run(trained, name)) is None
    (trained.runs / name / "events.jsonl").unlink()
    update_status(trained.runs / name, state="stopped")
    assert verdict.judge(load_run(trained, name)) is None  # stopped before its first step


def test_looping_probe_answers_are_called_over_fitting(trained, copy):
    name = copy("looping")
    answers(trained, name, 40, [LOOPING, "I be a pirate of the seven seas, and proud of it."])
    v = verdict.judge(load_run(trained, name))
    assert list(v.repeats.values()) == ["Arr, matey!"]
    text = v.markdown()
    assert 'repeats "Arr, matey!" over and over' in text and "Sign of over-fitting" in text
    # The loss is still high: the advice does not simply say "train more" on a model that already loops.
    assert "before training more" in text


def test_one_answer_to_different_prompts_is_called_over_fitting(trained, copy):
    name = copy("same")
    answers(trained, name, 40, ["Arr, matey!", "Arr, matey!"])
    v = verdict.judge(load_run(trained, name))
    assert v.same_answer and "different probe prompts got the same answer" in v.markdown()


def test_probe_answers_unchanged_from_step_0_are_said(trained, copy):
    name = copy("unchanged")
    answers(trained, name, 40, load_run(trained, name).probes[0]["answers"])
    v = verdict.judge(load_run(trained, name))
    assert v.changed == 0 and "None of the 2 probe answers changed" in v.markdown()
    answers(trained, name, 41, ["Ahoy, I be the ship's cook.", "Arr, a fine day for sailing."])
    assert "changed from the untrained model's for **2 of 2** prompts" in verdict.judge(load_run(trained, name)).markdown()


def test_the_loss_against_the_charts_range(trained, copy):
    name = copy("bands")
    steps(trained, name, [1.4, 1.1, 0.9, 1.0, 1.0, 1.0])
    v = verdict.judge(load_run(trained, name))
    assert v.band == "in range" and v.loss == pytest.approx(1.0) and "That is in the range" in v.markdown()
    steps(trained, name, [0.3, 0.2, 0.2, 0.2, 0.2, 0.2], first=200)
    low = verdict.judge(load_run(trained, name))
    assert low.band == "low" and "learning the examples by heart" in low.markdown() and "fewer epochs" in low.markdown()


def test_a_high_loss_says_whether_more_epochs_or_a_higher_rate_helps(trained, copy):
    name = copy("falling")
    steps(trained, name, [3.0, 2.9, 2.8, 2.4, 2.2, 2.0])
    assert "Resume with 1 or 2 **More epochs**" in verdict.judge(load_run(trained, name)).markdown()
    steps(trained, name, [2.0] * 6, first=200)
    flat = verdict.judge(load_run(trained, name)).markdown()
    rate = load_run(trained, name).config.train.learning_rate
    assert "levelled off" in flat and f"say {2 * rate:g} instead of {rate:g}" in flat


def test_a_held_out_loss_that_rose_is_called_over_fitting(trained, copy):
    name = copy("held-out")
    for step, loss in ((100, 1.2), (110, 1.0), (120, 1.3)):
        EventLog(trained.runs / name).write("eval", step=step, epoch=1.0, eval_loss=loss)
    v = verdict.judge(load_run(trained, name))
    assert v.eval_rise == (110, 1.0, 1.3) and "lowest at step 110 (1.00) and rose to 1.30" in v.markdown()


def test_repeated_phrases_are_found_and_ordinary_replies_pass():
    assert verdict.repeated_phrase(LOOPING) == "Arr, matey!"
    assert verdict.repeated_phrase("I be Captain Barnacles. I be Captain Barnacles.") == "I be Captain Barnacles."
    assert verdict.repeated_phrase("the sea, the sea, the sea, the sea") == "the sea,"
    assert verdict.repeated_phrase("Yes yes yes yes") == "Yes"
    assert verdict.repeated_phrase("Arr, matey! Arr, matey!") is None  # twice is a catchphrase, not a loop
    # Every reply of the pirate set ends "Arr, matey!" once; none of them loops.
    replies = [m["content"] for line in PIRATE.read_text().splitlines()
               for m in json.loads(line)["messages"] if m["role"] == "assistant"]
    assert len(replies) >= 108 and [r for r in replies if verdict.repeated_phrase(r)] == []
