"""Train tab: model, data set and preset; every parameter with the tutorial's advice; the plan with its
one-click fixes; Start / Stop / Resume; live loss and learning-rate charts, progress, memory, the log
and the probe answers; the runs list. Everything shown is read from the run folders, so a reloaded
page or a restarted app finds a live run where it left it. The handlers are plain functions of the
context; what they decide lives in engine.train (form, launch, runs, plan)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.access import OWNER, current_role
from engine.data.store import list_datasets
from engine.default_model import NAME as DEFAULT_NAME
from engine.train import actions, estimate, form, launch, line, plan, presets, runs
from engine.train.sources import absolute_dataset, check_sources
from engine.train.config import TEMPLATE_CHOICES, RunConfig, advice, with_changes
from ui.access import visitor_ok
from engine.i18n import tr
from ui.context import Context
from ui.i18n import _, t
from ui import train_preference
from ui.train_view import charts, log_tail, next_steps, probe_table, progress_text, runs_table
from ui.widgets import bind, follow, template_choices

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
# Every setting of the advanced panel, by its path in the run config; the model, data set and preset
# have their own controls above it, the probe prompts theirs below.
SECTIONS = {
    "Model": ["model.max_seq_length", "model.load_in_4bit", "model.dtype", "template", "model.trust_remote_code"],
    "LoRA": ["lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "lora.bias", "lora.use_rslora",
             "lora.loftq", "lora.gradient_checkpointing", "lora.checkpointed_layers", "lora.random_state"],
    "Training": ["train.epochs", "train.max_steps", "train.learning_rate", "train.batch_size",
                 "train.gradient_accumulation", "train.scheduler", "train.warmup_ratio", "train.optimizer",
                 "train.weight_decay", "train.max_grad_norm", "train.assistant_only_loss", "train.batching",
                 "train.eval_split", "train.logging_steps", "train.save_steps", "train.save_total_limit",
                 "train.seed", "train.report_to", "train.processes", "train.sharding"],
}
PATHS = [p for paths in SECTIONS.values() for p in paths] + ["probes.prompts", "probes.max_new_tokens",
                                                               *train_preference.PATHS]
MAX_FIXES = 4
# Each action's message shows beside the controls that caused it: Start's row, the Run row, the Runs row.
SECTION_TITLES = {"Model": "**Model**", "LoRA": "**LoRA**", "Training": "**Training**"}
MESSAGES = ("start", "run", "runs")
# The controls that follow the chosen run's state (engine.train.actions), then the notes that say why.
CONTROLS = ("start", "stop", "resume", "rename", "delete")
# What the timer's redraw returns: the run picker, the live panel's five parts, the controls and their
# two notes, the runs list (`refresh` adds the run shown, for the session's `shown`).
REFRESHED = 1 + 5 + len(CONTROLS) + 2 + 1
PIRATE = str(EXAMPLES / "pirate.jsonl")


def loaded_type(ctx: Context) -> str | None:
    """The Model tab's loaded model's model_type: the layer checkboxes offer its family's layers."""
    return ctx.manager.loaded.model_type if ctx.manager.loaded else None


def form_values(config, model_type: str | None = None) -> list:
    return form.values(config, PATHS, model_type)


def config_from(model: str, dataset: str, preset: str | None, values) -> RunConfig:
    return form.config_of(model, dataset, preset, PATHS, list(values))


def form_updates(config: RunConfig, model_type: str | None) -> list:
    """The form's values for a config, each with its help for the config's preset; the layers offered
    and ticked are those of a model of `model_type`, plus any the config names beyond them."""
    updates = []
    for path, value in zip(PATHS, form_values(config, model_type)):
        update = gr.update(value=value, info=tr(form.setting(path, config.preset).help))
        if path == form.MODULES:
            update["choices"] = list(form.layer_choices(model_type, value))
        updates.append(update)
    return updates


def layer_list(ctx: Context, chosen) -> dict:
    """The layer checkboxes once the loaded model may have changed (the page loads, the tab is shown):
    its family's layers offered, its defaults ticked where the defaults were, hand-picked ones kept."""
    model_type = loaded_type(ctx)
    value = form.ticked(model_type, chosen or [])
    return gr.update(choices=list(form.layer_choices(model_type, value)), value=value)


def _component(path: str, value, preset: str, model_type: str | None = None) -> gr.components.Component:
    s = form.setting(path, preset, model_type, value if path == form.MODULES else ())
    if s.kind == "modules":
        return gr.CheckboxGroup(list(s.choices), value=value, label=_(s.label),
                                info=_(s.help), elem_id="train-layers")
    if s.kind == "lines":
        return gr.Textbox(value, label=_(s.label), lines=4, info=_(s.help))
    if s.kind == "bool":
        return gr.Checkbox(value, label=_(s.label), info=_(s.help))
    if s.kind == "choice":
        choices = template_choices(TEMPLATE_CHOICES) if path == "template" else list(s.choices)
        return gr.Dropdown(choices, value=value, label=_(s.label), info=_(s.help))
    return gr.Number(value, label=_(s.label), info=_(s.help), precision=0 if s.kind == "int" else None)


# ---- choices -------------------------------------------------------------------------------------

def model_choices(ctx: Context) -> list[str]:
    local = sorted(p.name for p in ctx.workspace.models.iterdir() if (p / "config.json").exists() and p.name != DEFAULT_NAME)
    loaded = [ctx.manager.loaded.spec] if ctx.manager.loaded else []
    return list(dict.fromkeys(["default", *loaded, *local]))


def dataset_choices(ctx: Context) -> list[tuple[str, str]]:
    """The saved data sets, newest first (a damaged record last), then the examples, labelled as such."""
    saved = sorted((d for d in list_datasets(ctx.workspace) if d.trainable),
                   key=lambda d: d.meta.created if d.meta else "", reverse=True)
    examples = [(t("example: {name}", name=p.name), str(p)) for p in sorted(EXAMPLES.glob("*.jsonl"))]
    return [(d.label, d.name) for d in saved] + examples


def default_dataset(ctx: Context) -> str:
    """The newest saved data set; the pirate example only where none is saved."""
    first = dataset_choices(ctx)[0][1]
    return first if not first.startswith(str(EXAMPLES)) else PIRATE


def form_lists(ctx: Context, model: str | None, dataset: str | None, picked: bool) -> tuple:
    """The model and data set lists as the workspace holds them now. What the person picked or typed is
    left alone (the update sets no value, so typing meanwhile is not overwritten); a data set they never
    picked follows the newest saved one."""
    datasets = dataset_choices(ctx)
    chosen = {} if picked and dataset else {"value": default_dataset(ctx)}
    return gr.update(choices=model_choices(ctx)), gr.update(choices=datasets, **chosen)


def run_names(ctx: Context) -> list[str]:
    return [r.name for r in runs.list_runs(ctx.workspace)]


def default_run(ctx: Context) -> str | None:
    """The live run if there is one (re-attaching after a reload), else the newest."""
    active = runs.active_run(ctx.workspace)
    names = run_names(ctx)
    return active.name if active else (names[0] if names else None)


# ---- handlers ------------------------------------------------------------------------------------

def _said(where: str, text: str) -> tuple[str, ...]:
    """The three message slots: `text` beside the controls that caused it, the others emptied."""
    return tuple(text if slot == where else "" for slot in MESSAGES)


def controls(ctx: Context, name: str | None) -> tuple:
    """Start, Stop, Resume, Rename and Delete, each clickable only where it can act; the note beside
    Start says which run holds it, the note under the Run row why the chosen run cannot resume."""
    why = actions.allowed(ctx.workspace, name)
    owner = current_role() == OWNER  # a demo visitor sees them locked (ui/access.py)
    buttons = [gr.Button(interactive=owner and not why[action]) for action in CONTROLS]
    resume_note = why["resume"] if name and why["stop"] and why["resume"] else ""
    return (*buttons, actions.start_note(ctx.workspace), resume_note)


@visitor_ok
def show(ctx: Context, name: str | None) -> tuple:
    """The live panel of a run (progress, loss and learning-rate charts, probe answers, log) and the
    controls as its state allows."""
    run = runs.load_run(ctx.workspace, name) if name else None
    loss, lr = charts(run)
    return progress_text(run), loss, lr, probe_table(run), log_tail(run), *controls(ctx, name)


def refresh(ctx: Context, name: str | None) -> tuple:
    """The run picker (its choices, the run kept if it still exists), its live panel, the runs list and
    the run shown."""
    names = run_names(ctx)
    if name not in names:
        name = default_run(ctx)
    return (gr.update(choices=names, value=name), *show(ctx, name), runs_table(ctx.workspace), name)


@visitor_ok
def tick(ctx: Context, shown: str | None, seen: str | None) -> tuple:
    """Every two seconds: redraw the run the person last chose or started, only when a run folder
    changed. `shown` is the session's State, read as the tick runs; the picker's value would be the one
    the page had when the tick was sent, so a tick sent while Start ran would put the old run back. The
    tick never writes `shown`: one that ran alongside Start is put right by the next."""
    now = f"{shown}|{runs.fingerprint(ctx.workspace)}"
    if now == seen:
        return (*(gr.update() for _i in range(REFRESHED)), seen)
    return (*refresh(ctx, shown)[:-1], now)


def _plan_outputs(p: plan.Plan) -> tuple:
    buttons = [gr.update(visible=i < len(p.fixes), value=p.fixes[i].label if i < len(p.fixes) else "")
               for i in range(MAX_FIXES)]
    return (p.summary(), p.fixes, *buttons)


def pick_preset(ctx: Context, choice: str, model: str, dataset: str) -> tuple:
    config = presets.build(choice, dataset or "-", model or "default")
    return (tr(estimate.preset_help(choice)), *form_updates(config, loaded_type(ctx)))


def _checked(ctx: Context, model, dataset, preset, values) -> RunConfig:
    """The form's config once its data set and model are ones the app may read (engine.train.sources):
    a plan must not show the columns of any file of the machine."""
    return check_sources(ctx.workspace, absolute_dataset(config_from(model, dataset, preset, values)))


def show_pairs(ctx: Context, model, dataset, preset, *values) -> tuple[str, str]:
    return train_preference.pairs_view(ctx, _checked(ctx, model, dataset, preset, values))


def make_plan(ctx: Context, model, dataset, preset, *values) -> tuple:
    return _plan_outputs(plan.make(_checked(ctx, model, dataset, preset, values), ctx.workspace, ctx.hardware))


def measure(ctx: Context, model, dataset, preset, *values, progress=gr.Progress()):
    """The plan first, readable while a worker times a few real steps; then the plan with the measured
    time. The progress shows on the note beside the button, not over the plan."""
    config = _checked(ctx, model, dataset, preset, values)
    yield ("",  # the progress below says what happens
           *_plan_outputs(plan.make(config, ctx.workspace, ctx.hardware)))
    progress(0, desc=t("Timing a few real training steps in a worker process…"))
    plan.measure(config, ctx.workspace)
    yield (t("Measured: the plan's time now comes from real steps."),
           *_plan_outputs(plan.make(config, ctx.workspace, ctx.hardware)))


def apply_fix(ctx: Context, i: int, fixes, model, dataset, preset, *values) -> tuple:
    config = with_changes(_checked(ctx, model, dataset, preset, values), fixes[i].changes)
    return (*form_values(config, loaded_type(ctx)), *_plan_outputs(plan.make(config, ctx.workspace, ctx.hardware)))


def clear_messages() -> tuple[str, ...]:
    """Run before each action, so a refused one leaves no earlier action's message standing."""
    return _said("", "")


def start(ctx: Context, name, model, dataset, preset, *values) -> tuple:
    actions.check(ctx.workspace, "start")
    run, note = launch.start(ctx.workspace, ctx.manager, config_from(model, dataset, preset, values), name)
    said = t("**{name}** waits in line.", name=run.name) if run.state == "waiting" else t("Started **{name}**.", name=run.name)
    return (*_said("start", f"{said} {tr(note)}".strip() if note else said), *refresh(ctx, run.name))


def stop(ctx: Context, name) -> tuple:
    actions.check(ctx.workspace, "stop", name)
    if runs.load_run(ctx.workspace, name).state == "waiting":
        line.leave(ctx.workspace, name)
        return (*_said("run", t("Took **{name}** out of the line; it keeps its folder and settings (Duplicate puts them back in the form).", name=name)),
                *refresh(ctx, name))
    runs.stop_run(ctx.workspace, name)
    return (*_said("run", t("Stopping **{name}**: it saves a checkpoint and the adapter after the current step.", name=name)),
            *refresh(ctx, name))


def resume(ctx: Context, name, more_epochs) -> tuple:
    actions.check(ctx.workspace, "resume", name)
    run = runs.resume_run(ctx.workspace, name, float(more_epochs or 0))
    return (*_said("run", t("Resumed **{name}**.", name=run.name)), *refresh(ctx, name))


def rename(ctx: Context, name, new) -> tuple:
    actions.check(ctx.workspace, "rename", name)
    run = runs.rename_run(ctx.workspace, name, (new or "").strip())
    return (*_said("runs", t("Renamed **{name}** to **{new}**.", name=name, new=run.name)), *refresh(ctx, run.name))


def delete(ctx: Context, name) -> tuple:
    actions.check(ctx.workspace, "delete", name)
    runs.delete_run(ctx.workspace, name)
    return (*_said("runs", t("Deleted **{name}** and its folder.", name=name)), *refresh(ctx, None))


def duplicate(ctx: Context, name) -> tuple:
    if not name:
        raise ValueError(t("Choose a run first."))
    config = runs.load_run(ctx.workspace, name).config
    return (*_said("runs", t("The form now holds **{name}**'s config; change what you like and Start.", name=name)),
            config.model.name_or_path, config.dataset, True, config.preset or "quick-test",
            *form_updates(config, loaded_type(ctx)))


@visitor_ok
def _keep(name: str | None) -> str | None:
    return name


@visitor_ok
def _pick_row(evt: gr.SelectData) -> tuple[str, str]:
    return evt.row_value[0], evt.row_value[0]


# ---- the tab -------------------------------------------------------------------------------------

def render(ctx: Context) -> None:
    gr.Markdown(_(
        "Train a LoRA adapter. Pick a model, a data set and a preset, adjust anything under *Advanced*, look at "
        "the plan (what trains, whether it fits, how long it takes), then **Start**. Training runs in its own "
        "process: closing this page or restarting the app does not stop it."
    ))
    model_type = loaded_type(ctx)
    initial = dict(zip(PATHS, form_values(presets.build("quick-test", PIRATE), model_type)))
    with gr.Row():
        model = gr.Dropdown(model_choices(ctx), value="default", label=_("Model"), allow_custom_value=True,
                            info=_(advice("model.name_or_path")), elem_id="train-model")
        dataset = gr.Dropdown(dataset_choices(ctx), value=default_dataset(ctx), label=_("Data set"),
                              allow_custom_value=True, info=_(advice("dataset")), elem_id="train-dataset")
        preset = gr.Dropdown([(_(p.title), p.name) for p in presets.presets().values()], value="quick-test",
                             label=_("Preset"), elem_id="train-preset")
    picked = gr.State(False)  # the person chose the data set; until then it follows the newest saved one
    preset_help = gr.Markdown(_(estimate.preset_help("quick-test")))

    method_fields = train_preference.fields(ctx, initial, "quick-test")
    fields: list[gr.components.Component] = []
    with gr.Accordion(_("Advanced parameters"), open=False):
        for title, paths in SECTIONS.items():
            gr.Markdown(_(SECTION_TITLES[title]))
            for i in range(0, len(paths), 3):
                with gr.Row():
                    for path in paths[i:i + 3]:
                        fields.append(_component(path, initial[path], "quick-test", model_type))
    pairs_place = gr.Column()  # the preference data panel, filled once the form's inputs exist
    with gr.Accordion(_("Probe prompts"), open=False):
        gr.Markdown(_("Answered greedily by the untrained model and at each checkpoint, to watch the answers change."))
        fields += [_component(p, initial[p], "quick-test") for p in ("probes.prompts", "probes.max_new_tokens")]
    fields += method_fields

    with gr.Row(equal_height=True):
        plan_button = gr.Button(_("Plan"), elem_id="train-plan")
        measure_button = gr.Button(_("Measure speed (a few real steps)"), elem_id="train-measure")
        name = gr.Textbox(label=_("Run name"), placeholder=_("automatic"), scale=2, elem_id="train-name")
        start_button = gr.Button(_("Start"), variant="primary", elem_id="train-start")
    with gr.Row():  # under Plan and Measure, under the run name and Start
        with gr.Column(scale=2):
            measure_note = gr.Markdown(elem_id="train-measure-note")
        with gr.Column(scale=3):
            start_note = gr.Markdown(elem_id="train-start-note")
            start_message = gr.Markdown(elem_id="train-start-message")
    plan_text = gr.Markdown(elem_id="train-plan-text")
    fix_state = gr.State([])
    with gr.Row():
        fix_buttons = [gr.Button(visible=False, size="sm", elem_id=f"train-fix-{i}") for i in range(MAX_FIXES)]

    gr.Markdown(_("### Run"))
    with gr.Row():
        selected = gr.Dropdown(run_names(ctx), value=lambda: default_run(ctx), label=_("Run"), scale=3,
                               allow_custom_value=True, elem_id="train-run")
        stop_button = gr.Button(_("Stop"), variant="stop", elem_id="train-stop")
        more = gr.Number(0, label=_("More epochs"), precision=None, minimum=0,
                         info=_("To continue a finished run; 0 resumes where it stopped."), elem_id="train-more")
        resume_button = gr.Button(_("Resume"), elem_id="train-resume")
    resume_note = gr.Markdown(elem_id="train-resume-note")
    run_message = gr.Markdown(elem_id="train-run-message")
    progress = gr.Markdown(elem_id="train-progress")
    next_steps(ctx, selected, progress)
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", color="series", title=_("Loss (keep it roughly between 0.5 and 1.5)"),
                                height=260, elem_id="train-loss")
        lr_plot = gr.LinePlot(x="step", y="learning rate", title=_("Learning rate"), height=260, elem_id="train-lr")
    train_preference.reward_chart(ctx, selected, progress)
    with gr.Accordion(_("Probe answers (step x prompt)"), open=True):
        probe_grid = gr.Dataframe(probe_table(None), wrap=True, interactive=False, elem_id="train-probes")
    log = gr.Textbox(label=_("Log"), lines=10, max_lines=10, autoscroll=True, interactive=False, elem_id="train-log")

    gr.Markdown(_("### Runs"))
    table = gr.Dataframe(runs_table(ctx.workspace), interactive=False, elem_id="train-runs")
    with gr.Row():
        new_name = gr.Textbox(label=_("New name"), scale=2)
        rename_button = gr.Button(_("Rename"), elem_id="train-rename")
        duplicate_button = gr.Button(_("Duplicate config into the form"), elem_id="train-duplicate")
        delete_button = gr.Button(_("Delete"), variant="stop", elem_id="train-delete")
    runs_message = gr.Markdown(elem_id="train-runs-message")
    timer = gr.Timer(2.0)
    seen = gr.State(None)
    shown = gr.State(None)  # the run the person last chose or started (tick)

    inputs = [model, dataset, preset, *fields]
    with pairs_place:
        train_preference.panel(ctx, method_fields, show_pairs, inputs)
    messages = [start_message, run_message, runs_message]
    buttons = [start_button, stop_button, resume_button, rename_button, delete_button]
    live_outputs = [progress, loss_plot, lr_plot, probe_grid, log, *buttons, start_note, resume_note]
    redrawn = [selected, *live_outputs, table]  # the tick's outputs; the actions' add `shown`
    refresh_outputs = [*redrawn, shown]
    plan_targets = [plan_text, fix_state, *fix_buttons]

    def act(button, fn, inputs, outputs, **api):
        """`fn` on a click, after the three message slots are emptied."""
        button.click(clear_messages, None, messages, queue=False, show_progress="hidden", api_visibility="private") \
            .then(bind(fn, ctx), inputs, [*messages, *outputs], **api)

    preset.input(bind(pick_preset, ctx), [preset, model, dataset], [preset_help, *fields], api_visibility="private")
    dataset.input(lambda: True, None, picked, api_visibility="private")
    plan_button.click(bind(make_plan, ctx), inputs, plan_targets, api_name="train_plan")
    measure_button.click(bind(measure, ctx), inputs, [measure_note, *plan_targets], api_name="train_measure",
                         show_progress_on=measure_note)
    for i, button in enumerate(fix_buttons):
        button.click(bind(apply_fix, ctx, i), [fix_state, *inputs], [*fields, *plan_targets], api_visibility="private")
    act(start_button, start, [name, *inputs], refresh_outputs, api_name="train_start")
    act(stop_button, stop, [selected], refresh_outputs, api_name="train_stop")
    act(resume_button, resume, [selected, more], refresh_outputs, api_name="train_resume")
    act(rename_button, rename, [selected, new_name], refresh_outputs, api_visibility="private")
    act(delete_button, delete, [selected], refresh_outputs, api_visibility="private")
    act(duplicate_button, duplicate, [selected], [model, dataset, picked, preset, *fields],
        api_visibility="private")
    table.select(_pick_row, None, [selected, shown], api_visibility="private").then(
        bind(show, ctx), selected, live_outputs, api_visibility="private")
    selected.input(bind(show, ctx), selected, live_outputs, api_visibility="private")
    selected.input(_keep, selected, shown, api_visibility="private", show_progress="hidden")
    timer.tick(bind(tick, ctx), [shown, seen], [*redrawn, seen], api_visibility="private",
               show_progress="hidden")
    follow(ctx, bind(form_lists, ctx), [model, dataset, picked], [model, dataset])
    follow(ctx, bind(refresh, ctx), selected, refresh_outputs)
    layers = fields[PATHS.index(form.MODULES)]
    follow(ctx, bind(layer_list, ctx), layers, layers)
