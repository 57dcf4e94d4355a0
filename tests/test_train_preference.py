"""Preference tuning (DPO, ORPO, KTO) through the real worker subprocess on the tiny model, from a saved
preference data set, from a supervised run's adapter, from blind Compare votes, and from the chat choices
(a regenerated reply marked better or worse on the Chat tab)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from test_train_runs import ended
from test_train_runs import wait_for as wait

from engine.data.store import import_file
from engine.train import pairs, runs
from engine.train.config import ConfigError, validate

PROMPTS = ["Who are you?"]
wait_for = partial(wait, timeout=180.0)  # a preference step computes both replies


def steps_of(run: runs.Run) -> list[dict]:
    return [e for e in run.events if e["type"] == "step"]


@pytest.fixture
def pairs_set(workspace, tmp_path) -> str:
    """Twelve pairs preferring the reply that ends with the catchphrase, imported as a saved data set."""
    rows = [{"prompt": f"Question number {i}?", "chosen": f"Answer {i}. Arr, matey!", "rejected": f"Answer {i}."}
            for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(workspace, "pairs", path)
    return "pairs"


def config(tiny_model_path: Path, dataset: str, method: str, **sections) -> dict:
    return {
        "model": {"name_or_path": str(tiny_model_path), "max_seq_length": 64},
        "dataset": dataset, "method": method,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {"max_steps": 4, "batch_size": 4, "gradient_accumulation": 1, "learning_rate": 5e-3,
                  "save_steps": 2, "logging_steps": 1, **sections.pop("train", {})},
        "probes": {"prompts": PROMPTS, "max_new_tokens": 4},
        **sections,
    }


@pytest.mark.parametrize("method", ["dpo", "orpo", "kto"])
def test_each_method_trains_through_the_worker_and_logs_its_rewards(workspace, tiny_model_path, pairs_set, method):
    from peft import PeftConfig

    run = runs.start_run(workspace, validate(config(tiny_model_path, pairs_set, method)), name=method)
    run = wait_for(method, workspace, ended)
    assert run.state == "completed", (run.status, run.log_file.read_text()[-3000:])
    steps = steps_of(run)
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(e["tokens_per_s"] for e in steps[1:]) and steps[-1]["tokens"] > 0
    assert {"reward_margin"} <= steps[-1].keys()
    if method != "kto":  # trl's KTO logs no accuracy: it has no pairs to rank
        assert 0.0 <= steps[-1]["reward_accuracy"] <= 1.0
    # The pairs were learned: the chosen reply's reward moved above the rejected one's.
    assert steps[-1]["reward_margin"] > steps[0]["reward_margin"]
    assert [c.name for c in run.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    # Only the trained adapter is saved, not the reference copy DPO and KTO keep during training.
    assert PeftConfig.from_pretrained(run.adapter).r == 8 and not (run.adapter / "ref").exists()
    texts = " ".join(e.get("text", "") for e in run.events)
    assert f"{method.upper()} on " in texts and "from data set pairs" in texts


def test_dpo_continues_a_supervised_adapter_and_resumes_after_stop(workspace, tiny_model_path, pairs_set):
    import torch
    from safetensors.torch import load_file

    sft = validate(config(tiny_model_path, pairs_set, "supervised", lora={"r": 4, "alpha": 8, "dropout": 0.0}))
    runs.start_run(workspace, sft, name="sft")
    assert wait_for("sft", workspace, ended).state == "completed"

    dpo = config(tiny_model_path, pairs_set, "dpo", preference={"start_from": "sft", "beta": 0.2},
                 train={"max_steps": 400, "save_steps": 2})
    runs.start_run(workspace, validate(dpo), name="dpo")
    wait_for("dpo", workspace, lambda r: len(steps_of(r)) >= 3 or ended(r))
    runs.stop_run(workspace, "dpo")
    run = wait_for("dpo", workspace, ended)
    assert run.state == "stopped", run.status
    stopped_at = steps_of(run)[-1]["step"]
    assert run.latest_checkpoint.name == f"checkpoint-{stopped_at}"

    run.path.joinpath("run.yaml").write_text(validate({**dpo, "train": {**dpo["train"], "max_steps": stopped_at + 2}})
                                             .to_yaml())
    runs.resume_run(workspace, "dpo")
    run = wait_for("dpo", workspace, ended)
    assert run.state == "completed", run.status
    assert any(f"Resuming from checkpoint-{stopped_at}" in e.get("text", "") for e in run.events)
    assert [e["step"] for e in run.current("step")][-1] == stopped_at + 2
    # It trained the supervised adapter further (its rank, 4), so the result applies to the base alone.
    sft_weights = load_file(runs.load_run(workspace, "sft").adapter / "adapter_model.safetensors")
    dpo_weights = load_file(run.adapter / "adapter_model.safetensors")
    assert sft_weights.keys() == dpo_weights.keys()
    assert any(not torch.equal(sft_weights[k], dpo_weights[k]) for k in sft_weights)
    assert any("Continuing the adapter of run sft" in e.get("text", "") for e in run.events)


def test_the_reference_of_a_fresh_adapter_is_the_base_model_and_of_a_continued_one_its_copy(tiny_model_path,
                                                                                             pairs_set, tmp_path):
    """A fresh adapter computes what the base does, so DPO's reference pass runs without adapters (no
    "ref" copy, whose matrix products would cost CPU time for nothing); a supervised adapter to continue
    must be its own reference."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.hardware import detect
    from engine.train import backend, methods

    run_config = validate(config(tiny_model_path, pairs_set, "dpo"))
    settings, _ = backend.choose(run_config, detect())
    rows = [{"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Arr."}],
             "rejected": [{"role": "assistant", "content": "Hello."}]}] * 4
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)

    def reference_adapters(continued: bool) -> set[str]:
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_path),
                               LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
        if continued:
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_B" in name:
                        param.fill_(0.01)
        trainer = methods.preference_trainer(run_config, settings, model=model, processing_class=tokenizer,
                                             args=methods.preference_args(run_config, settings, tmp_path),
                                             train_dataset=Dataset.from_list(rows))
        return set(trainer.model.peft_config)

    assert reference_adapters(continued=False) == {"default"}
    assert reference_adapters(continued=True) == {"default", "ref"}


def test_a_preference_run_needs_pairs_and_a_finished_run_to_start_from(workspace, tiny_model_path, pairs_set):
    with pytest.raises(ConfigError, match="There is no run named 'nowhere'"):
        runs.start_run(workspace, validate(config(tiny_model_path, pairs_set, "dpo",
                                                  preference={"start_from": "nowhere"})), name="bad")
    assert not (workspace.runs / "bad").exists()
    with pytest.raises(ConfigError, match="preference methods"):
        validate(config(tiny_model_path, pairs_set, "supervised", preference={"votes_from": ["x"]}))


def _voted_comparisons(workspace, run: str, n: int) -> None:
    """`n` blind comparisons of `run` against the base, saved and voted on through the compare store: the
    reply with the catchphrase wins each, the last vote is a tie (left out of the pairs)."""
    from engine.compare import store

    for i in range(n):
        record = {"type": "comparison", "id": f"c{i}", "time": store.now(), "messages": [
            {"role": "user", "content": f"Question number {i}?"}], "sides": ["base", run], "blind": True,
            "shown": [run, "base"], "replies": {run: f"Answer {i}. Arr, matey!", "base": f"Answer {i}."},
            "runs": [run]}
        store.save(workspace, [run], record)
        store.vote(workspace, record, "tie" if i == n - 1 else "a")


def plain_set(workspace, tmp_path, n: int) -> None:
    """A saved supervised data set 'plain' of `n` one-turn conversations, holding no preference pairs."""
    rows = tmp_path / "plain.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"},
                                                     {"role": "assistant", "content": f"Reply number {i}, friend."}]}) + "\n"
                            for i in range(n)))
    import_file(workspace, "plain", rows)


def test_blind_votes_become_pairs_that_a_dpo_run_trains_on(workspace, tiny_model_path, tmp_path):
    plain_set(workspace, tmp_path, 8)
    runs.start_run(workspace, validate(config(tiny_model_path, "plain", "supervised", train={"max_steps": 2})),
                   name="voted")
    assert wait_for("voted", workspace, ended).state == "completed"
    _voted_comparisons(workspace, "voted", 9)

    dpo = validate(config(tiny_model_path, "plain", "dpo", preference={"votes_from": ["voted"]}))
    [source] = pairs.sources(workspace, dpo)  # the supervised set "plain" holds no pairs
    assert source.name == "votes of voted" and len(source.records) == 8
    assert source.records[0] == {"prompt": [{"role": "user", "content": "Question number 0?"}],
                                 "chosen": [{"role": "assistant", "content": "Answer 0. Arr, matey!"}],
                                 "rejected": [{"role": "assistant", "content": "Answer 0."}]}
    assert pairs.voted_runs(workspace) == [("voted", 8)]
    kto = pairs.training_records([source], "kto")
    assert len(kto) == 16 and [r["label"] for r in kto[:2]] == [True, False]

    runs.start_run(workspace, dpo, name="from-votes")
    run = wait_for("from-votes", workspace, ended)
    assert run.state == "completed", run.status
    assert any("DPO on 8 records (8 from votes of voted)" in e.get("text", "") for e in run.events)


def test_chat_choices_become_pairs_that_a_dpo_run_trains_on(workspace, tiny_model_path, tmp_path):
    from engine.chat import choices
    from ui.context import Context
    from ui.train_preference import chat_box, pairs_view

    plain_set(workspace, tmp_path, 4)
    for i in range(6):  # as the Chat tab saves them: the conversation with its system prompt, each reply's side
        conversation = [{"role": "system", "content": "You are a pirate."},
                        {"role": "user", "content": f"Question number {i}?"}]
        choices.save(workspace, conversation, f"Answer {i}. Arr, matey!", f"Answer {i}.", "base", "base")
    with choices.path(workspace).open("a") as f:  # a line cut by a crash, and one of another shape: left out
        f.write('{"prompt": [], "chosen": "x"}\n{"time": "cut')
    for bad, why in (([{"role": "user", "content": "Hi?"}], "the same"),
                     ([{"role": "system", "content": "Be brief."}], "ending with your message")):
        with pytest.raises(choices.ChoiceError, match=why):
            choices.save(workspace, bad, "Same reply.", "Same reply." if why == "the same" else "Other.", "base", "base")

    assert pairs.sources(workspace, validate(config(tiny_model_path, "plain", "dpo"))) == []  # not asked for
    dpo = validate(config(tiny_model_path, "plain", "dpo", preference={"chat_choices": True}))
    [source] = pairs.sources(workspace, dpo)
    assert source.name == "chat choices" and len(source.records) == 6
    assert source.records[0] == {"prompt": [{"role": "system", "content": "You are a pirate."},
                                            {"role": "user", "content": "Question number 0?"}],
                                 "chosen": [{"role": "assistant", "content": "Answer 0. Arr, matey!"}],
                                 "rejected": [{"role": "assistant", "content": "Answer 0."}]}
    counts, shown = pairs.first_preview(workspace, dpo)
    assert counts == [("chat choices", 6)]
    assert "You are a pirate." in shown["chosen"].segments[0][0]  # the system prompt is part of the prompt
    ctx = Context(workspace=workspace, manager=None, hardware=None)
    assert chat_box(ctx).label == "Chat choices (6 pairs)"  # the Train tab's switch counts them
    text, rendered = pairs_view(ctx, dpo)
    assert "**chat choices:** 6 records" in text and "Arr, matey!" in rendered
    with pytest.raises(ConfigError, match="preference methods"):
        validate(config(tiny_model_path, "plain", "supervised", preference={"chat_choices": True}))

    runs.start_run(workspace, dpo, name="from-chat")
    run = wait_for("from-chat", workspace, ended)
    assert run.state == "completed", run.status
    assert any("DPO on 6 records (6 from chat choices)" in e.get("text", "") for e in run.events)
    assert steps_of(run)[-1]["reward_margin"] is not None


def test_a_run_without_pairs_says_where_pairs_come_from(workspace, tiny_model_path, tmp_path):
    rows = tmp_path / "plain.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "A question for you?"},
                                             {"role": "assistant", "content": "A longer reply, my friend."}]}) + "\n")
    import_file(workspace, "plain", rows)
    dpo = validate(config(tiny_model_path, "plain", "dpo"))
    with pytest.raises(ConfigError, match="no preference pairs to train DPO on"):
        pairs.training_records(pairs.sources(workspace, dpo), "dpo")
    kto_rows = tmp_path / "kto.jsonl"
    kto_rows.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"Reply number {i}, friend.", "label": i % 2 == 0}) + "\n"
                                for i in range(4)))
    import_file(workspace, "judged", kto_rows)
    with pytest.raises(ConfigError, match="single replies marked good or bad, not pairs: train it with KTO"):
        pairs.training_records(pairs.sources(workspace, validate(config(tiny_model_path, "judged", "orpo"))), "orpo")


def test_the_preview_marks_what_each_reply_trains(workspace, tiny_model_path, pairs_set):
    from ui.train_preference import pairs_view
    from ui.context import Context

    cfg = validate(config(tiny_model_path, pairs_set, "dpo"))
    counts, shown = pairs.first_preview(workspace, cfg)
    assert counts == [("data set pairs", 12)]
    chosen, rejected = shown["chosen"], shown["rejected"]
    # The prompt is context; the reply (with its end of turn) is what trains.
    assert [trained for _, trained in chosen.segments] == [False, True]
    assert chosen.segments[0][0].endswith("Question number 0?<|im_end|>\n<|im_start|>assistant\n")
    assert chosen.segments[1][0].startswith("Answer 0. Arr, matey!<|im_end|>")
    assert rejected.segments[1][0].startswith("Answer 0.<|im_end|>") and chosen.trained > rejected.trained

    ctx = Context(workspace=workspace, manager=None, hardware=None)
    text, rendered = pairs_view(ctx, cfg)
    assert "**data set pairs:** 12 records" in text
    assert "Chosen reply:" in rendered and "Rejected reply:" in rendered and "Arr, matey!" in rendered
    supervised, nothing = pairs_view(ctx, validate(config(tiny_model_path, pairs_set, "supervised")))
    assert "choose DPO, ORPO or KTO" in supervised and nothing == ""


def test_a_preference_run_is_judged_by_its_reward_margin(workspace, tiny_model_path, pairs_set):
    from engine.train import verdict

    runs.start_run(workspace, validate(config(tiny_model_path, pairs_set, "dpo")), name="judged")
    run = wait_for("judged", workspace, ended)
    judged = verdict.judge(run)
    margins = [e["reward_margin"] for e in steps_of(run)]
    assert judged.lines[0].startswith("The reward margin") and "learned the preferences" in judged.lines[0]
    assert f"**{sum(margins[-3:]) / 3:.2f}**" in judged.lines[0]
    assert "the chart recommends" not in judged.markdown()  # the supervised loss range says nothing here


def test_the_plan_of_a_preference_run_says_what_it_trains_on(workspace, tiny_model_path, pairs_set):
    from engine.train import plan

    made = plan.make(validate(config(tiny_model_path, pairs_set, "kto")), workspace)
    assert made.notes[0].startswith("KTO trains on preference records (12 from data set pairs)")
    assert not any("preference records" in n for n in plan.make(
        validate(config(tiny_model_path, pairs_set, "supervised")), workspace).notes)


def test_votes_between_a_preference_run_and_its_supervised_run_are_its_win_rate_against_it(workspace,
                                                                                         tiny_model_path):
    from engine.compare import store
    from engine.files import write_text
    from tests.compare_runs import adapter_run

    adapter_run(workspace, "sft", tiny_model_path)
    path = adapter_run(workspace, "dpo", tiny_model_path, std=0.1)
    started = runs.load_run(workspace, "dpo").config.model_dump(mode="json")
    started.update(method="dpo", preference={"start_from": "sft"})
    write_text(path / "run.yaml", validate(started).to_yaml())
    for i, (sides, winner) in enumerate([(["dpo", "sft"], "dpo"), (["sft", "dpo"], "dpo"), (["dpo", "sft"], "sft")]):
        loser = next(side for side in sides if side != winner)
        record = {"type": "comparison", "id": f"c{i}", "time": store.now(), "blind": True, "sides": sides,
                  "messages": [{"role": "user", "content": "Hello?"}], "shown": [winner, loser],
                  "replies": {"dpo": "Arr!", "sft": "Hello."}, "runs": sides}
        store.save(workspace, sides, record)
        store.vote(workspace, record, "a")  # the answer shown under A: the winner
    # Whichever side each comparison put it on, the preference run is measured against the supervised one.
    [tally] = store.win_rates(path)
    assert (tally.reference, tally.challenger, tally.wins, tally.losses) == ("sft", "dpo", 2, 1)
    assert store.reference_first(workspace, "base", "dpo") == ["base", "dpo"]


def test_start_checks_the_runs_a_preference_run_names(workspace, tiny_model_path, pairs_set):
    from engine.train.sources import check_sources
    from tests.compare_runs import adapter_run

    with pytest.raises(ConfigError, match="There is no run named 'gone'"):
        check_sources(workspace, validate(config(tiny_model_path, pairs_set, "dpo", preference={"votes_from": ["gone"]})))
    adapter_run(workspace, "other-model", tiny_model_path)
    other = config(tiny_model_path, pairs_set, "dpo", preference={"start_from": "other-model"})
    other["model"]["name_or_path"] = "default"
    with pytest.raises(ConfigError, match="a preference run continues an adapter on the model it was trained on"):
        check_sources(workspace, validate(other))
