"""The Train tab's handlers called as plain functions of a Context on a real workspace, no browser:
the form and the run config map both ways, the plan, the lists that follow the workspace, the controls
that follow a run's state (and the handlers that refuse what a disabled button would), the redraw that
follows the run folders, and each message beside the controls that caused it."""

from __future__ import annotations

import re

import pytest

from engine.chat.models import ModelManager
from engine.data.store import import_file
from engine.files import write_json
from engine.train import presets, runs
from engine.train.runs import RunError
from ui import train_tab
from ui.context import Context
from ui.train_tab import EXAMPLES, PATHS, form_values

PIRATE = str(EXAMPLES / "pirate.jsonl")


@pytest.fixture
def ctx(workspace):
    from engine.hardware import detect

    return Context(workspace, ModelManager(workspace), detect())


def test_the_form_and_the_config_map_both_ways():
    config = presets.build("roleplay", PIRATE, train={"max_steps": 7})
    values = form_values(config)
    assert values[PATHS.index("probes.prompts")] == "\n".join(config.probes.prompts)
    assert train_tab.config_from("default", PIRATE, "roleplay", values) == config
    values[PATHS.index("train.max_steps")] = 0  # the form's "use epochs"
    values[PATHS.index("lora.r")] = 32.0  # a number box sends floats
    values[PATHS.index("probes.prompts")] = "Who are you?\n\n  Sing a song.  \n"
    again = train_tab.config_from("default", PIRATE, "roleplay", values)
    assert again.train.max_steps is None and again.lora.r == 32 and isinstance(again.lora.r, int)
    assert again.probes.prompts == ["Who are you?", "Sing a song."]
    with pytest.raises(ValueError, match="Choose a data set first"):
        train_tab.config_from("default", " ", "roleplay", values)


def test_choosing_a_preset_fills_the_form_with_its_values(ctx):
    summary, *fields = train_tab.pick_preset(ctx, "tutorial", "default", PIRATE)
    assert summary == presets.presets()["tutorial"].summary
    rate, batch = fields[PATHS.index("train.learning_rate")], fields[PATHS.index("train.batch_size")]
    assert rate["value"] == 2e-5 and batch["value"] == 16
    assert "Tutorial recipe: 2e-5, the tutorial's full recipe" in rate["info"]  # the help follows the preset
    _, *fields = train_tab.pick_preset(ctx, "quick-test", "default", PIRATE)
    assert "Quick test: 3e-4" in fields[PATHS.index("train.learning_rate")]["info"]


def test_the_plan_handler_describes_the_data_and_offers_no_fix_when_it_fits(ctx, tiny_model_path):
    config = presets.build("quick-test", PIRATE, model=str(tiny_model_path))
    summary, fixes, *buttons = train_tab.make_plan(ctx, str(tiny_model_path), PIRATE, "quick-test",
                                                   *form_values(config))
    assert "108 conversations" in summary and "**fits**" in summary
    # the header's figure in the same unit (GB against GiB would differ by 7%); free memory moves a little
    plan_free = float(re.search(r"of ([0-9.]+) GiB free", summary).group(1))
    header_free = float(re.search(r"([0-9.]+) of [0-9.]+ GiB free", ctx.hardware.summary()).group(1))
    assert abs(plan_free - header_free) <= 0.02 * header_free + 0.1
    assert fixes == [] and all(b["visible"] is False for b in buttons)


def test_start_while_a_run_is_live_puts_the_new_run_in_line(ctx):
    config = presets.build("quick-test", PIRATE)
    runs.create_run(ctx.workspace, config, name="first")  # queued: its worker is "starting"
    start_message, *_ = train_tab.start(ctx, "second", "default", PIRATE, "quick-test", *form_values(config))
    assert "**second** waits in line" in start_message and "place 2" in start_message and "**first**" in start_message
    assert runs.load_run(ctx.workspace, "second").state == "waiting"
    for name in ("first", "second"):
        runs.update_status(runs.load_run(ctx.workspace, name).path, state="stopped")


def test_the_timer_redraws_only_when_a_run_folder_changed(ctx):
    run = runs.create_run(ctx.workspace, presets.build("quick-test", PIRATE), name="watched")
    picker, progress, *_, seen = train_tab.tick(ctx, None, None)
    assert picker["value"] == "watched" and "watched: queued" in progress
    assert all(u == {"__type__": "update"} for u in train_tab.tick(ctx, None, seen)[:-1])  # nothing changed
    runs.update_status(run.path, state="stopped")
    _, progress, *_, table, after = train_tab.tick(ctx, None, seen)
    assert "watched: stopped" in progress and after != seen and list(table["state"]) == ["stopped"]


def test_the_timer_keeps_to_the_run_started_not_the_one_the_page_showed(ctx):
    """Start hands the session its run (the last output, `shown`); the timer redraws that one, whatever
    the picker held when the tick was sent (the newest run here being another)."""
    config = presets.build("quick-test", PIRATE)
    runs.update_status(runs.create_run(ctx.workspace, config, name="earlier").path, state="completed")
    *_, shown = train_tab.start(ctx, "started", "default", PIRATE, "quick-test", *form_values(config))
    runs.update_status(runs.create_run(ctx.workspace, config, name="newest").path, state="completed")
    picker, progress, *_ = train_tab.tick(ctx, shown, None)
    assert shown == "started" and picker["value"] == "started" and "started:" in progress
    runs.update_status(runs.load_run(ctx.workspace, "started").path, state="stopped")


def test_a_run_button_without_a_chosen_run_says_what_to_do(ctx):
    for handler, args in ((train_tab.stop, ()), (train_tab.resume, (0,)), (train_tab.delete, ()),
                          (train_tab.duplicate, ())):
        with pytest.raises(ValueError, match="Choose a run first"):
            handler(ctx, None, *args)


def test_duplicate_puts_a_runs_config_back_into_the_form(ctx):
    config = presets.build("roleplay", PIRATE, train={"epochs": 5})
    runs.create_run(ctx.workspace, config, name="original")
    runs.update_status(runs.load_run(ctx.workspace, "original").path, state="stopped")
    start_message, run_message, message, model, dataset, picked, preset, *values = train_tab.duplicate(ctx, "original")
    assert "original" in message and start_message == run_message == ""
    assert (model, dataset, picked, preset) == ("default", PIRATE, True, "roleplay")
    assert train_tab.config_from(model, dataset, preset, [v["value"] for v in values]) == config


def _values(update) -> list:
    return [c[1] for c in update["choices"]]


def test_the_data_set_list_follows_the_workspace_and_keeps_a_choice(ctx):
    _, data = train_tab.form_lists(ctx, "default", PIRATE, False)
    assert data["value"] == PIRATE  # nothing saved yet: the example
    assert ("example: pirate.jsonl", PIRATE) in data["choices"]
    import_file(ctx.workspace, "older", PIRATE)
    import_file(ctx.workspace, "newer", EXAMPLES / "sharegpt_sample.jsonl")
    model, data = train_tab.form_lists(ctx, "my/model", PIRATE, False)
    assert data["value"] == "newer" and _values(data)[:2] == ["newer", "older"]  # the newest saved, first
    assert PIRATE in _values(data)
    assert "value" not in model and "default" in model["choices"]  # what was typed stays: no value is sent
    for choice in ("older", PIRATE):  # picked by the person (the example too): left as it is
        _, data = train_tab.form_lists(ctx, "default", choice, True)
        assert "value" not in data and _values(data)[0] == "newer"


def _buttons(ctx, name) -> dict:
    *buttons, start_note, resume_note = train_tab.controls(ctx, name)
    state = {action: b.interactive for action, b in zip(train_tab.CONTROLS, buttons)}
    return {**state, "start_note": start_note, "resume_note": resume_note}


def _checkpoint(run, step: int) -> None:
    write_json(run.path / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json", {"global_step": step})


def test_the_controls_follow_the_chosen_runs_state(ctx):
    config = presets.build("quick-test", PIRATE)
    assert _buttons(ctx, None) == {"start": True, "stop": False, "resume": False, "rename": False, "delete": False,
                                   "start_note": "", "resume_note": ""}
    live = runs.create_run(ctx.workspace, config, name="live")  # queued: its worker is "starting"
    state = _buttons(ctx, "live")
    assert state["stop"] and state["start"] and not (state["resume"] or state["rename"] or state["delete"])
    assert state["start_note"].startswith("'live' is training: a run started now waits in line at place 2")
    runs.update_status(live.path, state="stopped")
    state = _buttons(ctx, "live")
    assert state["start"] and state["rename"] and state["delete"] and not (state["stop"] or state["resume"])
    assert "no checkpoint to resume from" in state["resume_note"]
    _checkpoint(live, 5)
    assert _buttons(ctx, "live")["resume"] and _buttons(ctx, "live")["resume_note"] == ""


def test_a_direct_call_is_refused_where_the_button_would_be_disabled(ctx):
    config = presets.build("quick-test", PIRATE)
    done = runs.create_run(ctx.workspace, config, name="done")
    runs.update_status(done.path, state="stopped")
    with pytest.raises(RunError, match="'done' is not running .it is stopped., so there is nothing to stop"):
        train_tab.stop(ctx, "done")
    with pytest.raises(RunError, match="'done' has no checkpoint to resume from"):
        train_tab.resume(ctx, "done", 0)
    assert runs.load_run(ctx.workspace, "done").state == "stopped"  # nothing was started
    _checkpoint(done, 5)
    live = runs.create_run(ctx.workspace, config, name="live")
    with pytest.raises(RunError, match="'live' is training; stop it or wait"):
        train_tab.resume(ctx, "done", 0)  # it has a checkpoint, but another run trains
    for handler, args in ((train_tab.rename, ("renamed",)), (train_tab.delete, ())):
        with pytest.raises(RunError, match="'live' is queued; it can be .* once it has stopped"):
            handler(ctx, "live", *args)
    assert live.path.is_dir() and not (ctx.workspace.runs / "renamed").exists()
    runs.update_status(live.path, state="stopped")


def test_each_message_shows_beside_its_controls_and_replaces_the_last(ctx):
    config = presets.build("quick-test", PIRATE)
    runs.create_run(ctx.workspace, config, name="first")
    start_message, run_message, runs_message, *_ = train_tab.stop(ctx, "first")
    assert "Stopping **first**" in run_message and start_message == runs_message == ""
    runs.update_status(runs.load_run(ctx.workspace, "first").path, state="stopped")
    start_message, run_message, runs_message, *_ = train_tab.rename(ctx, "first", "second")
    assert "Renamed **first** to **second**" in runs_message and start_message == run_message == ""
    assert train_tab.clear_messages() == ("", "", "")


def test_every_setting_has_a_human_label_and_its_choices_words():
    from engine.train import form

    from engine.train.config import field

    assert [p for p in PATHS if not field(p).title] == []  # each label chosen, none made from a field's name
    labels = {p: form.setting(p).label for p in PATHS}
    assert labels["lora.r"] == "LoRA rank (r)" and labels["lora.use_rslora"] == "Rank-stabilised LoRA (rsLoRA)"
    assert labels["lora.loftq"] == "LoftQ initialisation" and labels["train.report_to"] == "Send metrics to"
    assert all(form.setting(p).help for p in PATHS)
    assert dict(form.setting("train.report_to").choices) == {"only this app": "none", "TensorBoard": "tensorboard",
                                                             "Weights & Biases": "wandb"}


@pytest.mark.parametrize("name", list(presets.presets()))
def test_a_presets_help_quotes_its_own_values(name):
    from engine.train import form
    from engine.train.config import get

    preset = presets.presets()[name]
    config = presets.build(name, PIRATE)
    assert preset.why, "each preset says why it chose its values"
    for path, why in preset.why.items():
        help = form.setting(path, name).help
        assert f"{preset.title}: {form.shown(get(config, path))}, {why}." in help, path  # the value from the preset
        assert help.startswith(form.setting(path).help)  # after the setting's general advice


def test_the_layer_checkboxes_follow_the_loaded_models_family(ctx, default_model_path):
    """Phi-3 fuses q/k/v and gate/up: with a Phi-3 model loaded the form offers and ticks its own layers,
    a run started from the form targets them, a saved config's layers stay offered, and with the
    default model (or none) the seven default names are back."""
    from engine.chat import families
    from engine.train import form
    from tests.model_shapes import family_model, family_tokenizer

    default = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    fused = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    at = PATHS.index("lora.target_modules")
    assert train_tab.layer_list(ctx, default)["choices"] == [*default, "embed_tokens", "lm_head"]  # none loaded

    folder = ctx.workspace.models / "tiny-phi3"
    tok = family_tokenizer(default_model_path, "phi3", families.by_key("phi3").template_text())
    family_model("phi3", tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    ctx.manager.load("tiny-phi3")
    shown = train_tab.layer_list(ctx, default)  # the Train tab shown after the Model tab loaded Phi-3
    assert shown["choices"] == [*fused, "embed_tokens", "lm_head"] and shown["value"] == fused
    assert train_tab.layer_list(ctx, [*default, "lm_head"])["value"] == [*fused, "lm_head"]
    _, *fields = train_tab.pick_preset(ctx, "quick-test", "tiny-phi3", PIRATE)
    assert fields[at]["choices"] == shown["choices"] and fields[at]["value"] == fused

    runs.create_run(ctx.workspace, presets.build("quick-test", PIRATE), name="first")  # the form's run waits
    values = [f["value"] for f in fields]
    train_tab.start(ctx, "phi", "tiny-phi3", PIRATE, "quick-test", *values)
    assert runs.load_run(ctx.workspace, "phi").config.lora.target_modules == fused
    for name in ("first", "phi"):
        runs.update_status(runs.load_run(ctx.workspace, name).path, state="stopped")

    # A saved config naming layers Phi-3's list lacks: Duplicate keeps them ticked, and offered.
    config = presets.build("quick-test", PIRATE, lora={"target_modules": ["q_proj", "v_proj"]})
    runs.update_status(runs.create_run(ctx.workspace, config, name="unfused").path, state="stopped")
    layers = train_tab.duplicate(ctx, "unfused")[7 + at]  # after 3 messages and model, data, picked, preset
    assert layers["value"] == ["q_proj", "v_proj"] and {"q_proj", "v_proj"} <= set(layers["choices"])
    assert train_tab.layer_list(ctx, ["q_proj", "v_proj"])["value"] == ["q_proj", "v_proj"]

    ctx.manager.load("default")
    back = train_tab.layer_list(ctx, fused)
    assert back["choices"] == [*default, "embed_tokens", "lm_head"] and back["value"] == default
    assert form.setting("lora.target_modules").choices == (*default, "embed_tokens", "lm_head")
