"""The "Start here" path's engine (engine/guide.py, engine/glossary.py): from a goal to a saved data set with
the persona's system prompt, two rendered examples, a safe config for this machine with its plan in plain
words, and the held-out prompts read before and after training. Real files, the real default model's
tokenizer and the real plan; only the machine with too little memory is a stand-in."""

from __future__ import annotations

import dataclasses

import pytest

from engine import glossary, guide
from engine.data.store import read_dataset, read_meta
from engine.files import append_jsonl, now
from engine.hardware import GiB, detect
from engine.i18n import CHINESE, table, tr
from engine.train import plan as plans
from engine.train.runs import PROBES_FILE, load_run


def test_the_character_goal_saves_the_pirate_data_with_the_card_as_every_system_prompt(workspace):
    p = guide.prepare(workspace, "character")
    rows = read_dataset(workspace, p.name)
    assert p.name == "start-character" and p.rows == len(rows) == 108 and p.dropped == 0
    systems = {row["messages"][0]["content"] for row in rows if row["messages"][0]["role"] == "system"}
    assert systems == {p.system_prompt} and "You are Captain Barnacle Bess." in p.system_prompt
    assert read_meta(workspace, p.name).system_prompt == p.system_prompt  # the export reads it from there
    trained_on = {m["content"] for row in rows for m in row["messages"]}
    assert len(p.prompts) == guide.PROMPTS and not set(p.prompts) & trained_on  # held out: never trained on
    words = str(guide.summary(p))
    assert "108 example conversations from pirate.jsonl" in words and "learns to be Captain Barnacle Bess" in words


def test_preparing_again_keeps_the_first_data_set(workspace):
    first, second = guide.prepare(workspace, "character"), guide.prepare(workspace, "character")
    assert (first.name, second.name) == ("start-character", "start-character-2")
    assert len(read_dataset(workspace, first.name)) == 108


def test_an_own_file_without_a_card_trains_as_it_is_and_watches_its_own_prompts(workspace, tmp_path):
    own = tmp_path / "mine.jsonl"
    own.write_text("".join(
        f'{{"messages": [{{"role": "user", "content": "Question {i}?"}}, {{"role": "assistant", "content": "Answer {i}."}}]}}\n'
        for i in range(6)), encoding="utf-8")
    p = guide.prepare(workspace, "qa", upload=str(own))
    assert (p.rows, p.system_prompt, p.card, p.prompts) == (6, "", None, [])
    config, _ = guide.setup(workspace, p, detect())
    assert config.probes.prompts == ["Question 5?", "Question 4?", "Question 3?", "Question 2?"]
    assert "character card" not in str(guide.summary(p))


def test_two_examples_render_as_training_sees_them(workspace):
    p = guide.prepare(workspace, "character")
    shown = guide.examples(workspace, p)
    assert len(shown) == 2
    for preview in shown:
        assert "Captain Barnacle Bess" in preview.text and preview.trained > 0 and preview.ends_with_eos
        trained = "".join(piece for piece, on in preview.segments if on)
        assert "Arr, matey!" in trained and "You are Captain" not in trained  # the card is read, not learned


def test_the_safe_setup_is_a_short_quick_test_here_with_the_held_out_prompts(workspace):
    p = guide.prepare(workspace, "character")
    config, made = guide.setup(workspace, p, detect())
    assert config.preset == guide.preset_for(detect().device)
    assert config.train.max_steps == made.total_steps == guide.TASTE_STEPS
    assert config.probes.prompts == p.prompts
    words = str(guide.plan_words(made))
    assert f"{guide.TASTE_STEPS} steps" in words and plans.duration(made.seconds) in words
    assert "fits" in words and "estimate" in words  # nothing trained in this workspace yet


def test_the_full_setup_runs_the_whole_preset(workspace):
    p = guide.prepare(workspace, "character")
    config, made = guide.setup(workspace, p, detect(), taste=False)
    assert config.train.max_steps is None and made.total_steps > guide.TASTE_STEPS


@dataclasses.dataclass(frozen=True)
class SmallMachine:
    """A stand-in for a computer with 200 MiB free: this one has more, and a test cannot take it away."""

    real: object

    def __getattr__(self, name):
        return getattr(self.real, name)

    def free_bytes(self) -> int:
        return 200 * 2**20


def test_on_a_machine_without_the_memory_the_plan_says_so_in_plain_words(workspace):
    p = guide.prepare(workspace, "character")
    _, made = guide.setup(workspace, p, SmallMachine(detect()))
    assert made.verdict == plans.WONT_FIT
    words = str(guide.plan_words(made))
    assert f"only {200 * 2**20 / GiB:.1f} GiB is free" in words and "run out of memory" in words


def test_the_side_by_side_waits_for_the_answers_after_training(workspace, default_model_path):
    from tests.compare_runs import adapter_run

    adapter_run(workspace, "guided", default_model_path, prompts=["Hi?"], probes={0: ["Hello."]})
    assert guide.side_by_side(load_run(workspace, "guided")) == []  # only the untrained answers so far
    append_jsonl(workspace.runs / "guided" / PROBES_FILE,
                 {"time": now(), "step": 10, "prompts": ["Hi?"], "answers": ["Ahoy! Arr, matey!"]})
    assert guide.side_by_side(load_run(workspace, "guided")) == [("Hi?", "Hello.", "Ahoy! Arr, matey!")]


def test_after_a_reload_the_newest_run_of_this_path_is_found_again(workspace, default_model_path):
    from tests.compare_runs import adapter_run

    assert guide.latest_run(workspace) is None
    p = guide.prepare(workspace, "character")
    adapter_run(workspace, "elsewhere", default_model_path)  # a run of the Train tab's, on another data set
    assert guide.latest_run(workspace) is None
    config, _ = guide.setup(workspace, p, detect())
    folder = adapter_run(workspace, "guided", default_model_path)
    (folder / "run.yaml").write_text(config.to_yaml(), encoding="utf-8")
    assert guide.latest_run(workspace).name == "guided"


def test_an_unknown_goal_is_refused_with_what_to_do(workspace):
    with pytest.raises(ValueError, match="Pick one of the goals first"):
        guide.prepare(workspace, "poetry")


def test_every_word_of_the_brief_has_one_sentence_in_both_languages():
    words = ["LoRA", "rank", "epoch", "learning rate", "loss", "batch", "out of memory", "quantisation", "GGUF",
             "adapter", "checkpoint"]
    assert sorted(glossary.TERMS) == sorted(words)
    for sentence in glossary.explain(*words):
        assert sentence.count(". ") == 0 and sentence.endswith(".")  # one sentence
        assert sentence.template in table(), sentence
        assert tr(sentence, CHINESE) != str(sentence)


@pytest.mark.slow
def test_the_ollama_export_carries_the_persona_in_its_modelfile(workspace, default_model_path):
    import yaml

    from tests.export_runs import make_run

    p = guide.prepare(workspace, "character")
    folder = make_run(workspace, "guided", "default", default_model_path)
    config = yaml.safe_load((folder / "run.yaml").read_text())
    (folder / "run.yaml").write_text(yaml.safe_dump({**config, "dataset": p.name}, sort_keys=False))
    result = guide.export_for_ollama(workspace, load_run(workspace, "guided"))
    assert result.passed and (result.path / "Modelfile").exists()
    modelfile = (result.path / "Modelfile").read_text(encoding="utf-8")
    assert "SYSTEM" in modelfile and "You are Captain Barnacle Bess." in modelfile
