"""Train tab: model, data set and preset; every parameter with the tutorial's advice; the plan with its
one-click fixes; Start / Stop / Resume; live loss and learning-rate charts, progress, memory, the log
and the probe answers; the runs list. Everything shown is read from the run folders, so a reloaded
page or a restarted app finds a live run where it left it."""

from __future__ import annotations

import typing
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd

from engine.data.store import list_datasets
from engine.default_model import NAME as DEFAULT_NAME
from engine.train import plan, presets, probes, runs
from engine.train.config import EMBEDDING_MODULES, LINEAR_MODULES, RunConfig, advice, validate, with_changes
from ui.context import Context
from ui.errors import friendly

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
# Every setting of the advanced panel, by its path in the run config; the model, data set and preset
# have their own controls above it, the probe prompts theirs below.
SECTIONS = {
    "Model": ["model.max_seq_length", "model.load_in_4bit", "model.dtype", "template", "model.trust_remote_code"],
    "LoRA": ["lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "lora.bias", "lora.use_rslora",
             "lora.loftq", "lora.gradient_checkpointing", "lora.random_state"],
    "Training": ["train.epochs", "train.max_steps", "train.learning_rate", "train.batch_size",
                 "train.gradient_accumulation", "train.scheduler", "train.warmup_ratio", "train.optimizer",
                 "train.weight_decay", "train.max_grad_norm", "train.assistant_only_loss", "train.batching",
                 "train.eval_split", "train.logging_steps", "train.save_steps", "train.save_total_limit",
                 "train.seed", "train.report_to"],
}
PATHS = [p for paths in SECTIONS.values() for p in paths] + ["probes.prompts", "probes.max_new_tokens"]
MAX_FIXES = 4
LOG_LINES = 40


# ---- the form <-> a run config -------------------------------------------------------------------

def _field(path: str):
    model: type = RunConfig
    *parents, leaf = path.split(".")
    for key in parents:
        model = model.model_fields[key].annotation
    return model.model_fields[leaf]


def _get(config: RunConfig, path: str):
    value = config
    for key in path.split("."):
        value = getattr(value, key)
    return value


def _component(path: str, value) -> gr.components.Component:
    f = _field(path)
    label = path.split(".")[-1].replace("_", " ").capitalize()
    info = advice(path)
    kind = f.annotation
    if path == "lora.target_modules":
        return gr.CheckboxGroup(LINEAR_MODULES + EMBEDDING_MODULES, value=value, label="Target modules", info=info)
    if path == "probes.prompts":
        return gr.Textbox(value, label="Probe prompts (one a line)", lines=4, info=info)
    if kind is bool:
        return gr.Checkbox(value, label=label, info=info)
    if typing.get_origin(kind) is typing.Literal:
        return gr.Dropdown(list(typing.get_args(kind)), value=value, label=label, info=info)
    integer = kind is int or int in typing.get_args(kind)
    return gr.Number(value, label=label + (" (0 = use epochs)" if path == "train.max_steps" else ""), info=info,
                     precision=0 if integer else None)


def form_values(config: RunConfig) -> list:
    values = []
    for path in PATHS:
        value = _get(config, path)
        if path == "probes.prompts":
            value = "\n".join(value)
        elif path == "train.max_steps":
            value = value or 0
        values.append(value)
    return values


def config_from(model: str, dataset: str, preset: str | None, values: list) -> RunConfig:
    data: dict = {"preset": preset or None, "model": {"name_or_path": (model or "default").strip()},
                  "dataset": (dataset or "").strip()}
    for path, value in zip(PATHS, values):
        if path == "probes.prompts":
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
        elif path == "train.max_steps":
            value = int(value) if value else None
        elif isinstance(value, float) and value.is_integer() and _field(path).annotation is int:
            value = int(value)
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if not data["dataset"]:
        raise ValueError("Choose a data set first: a saved one, an example, or the path to a file.")
    return validate(data)


# ---- choices -------------------------------------------------------------------------------------

def _model_choices(ctx: Context) -> list[str]:
    local = sorted(p.name for p in ctx.workspace.models.iterdir() if (p / "config.json").exists() and p.name != DEFAULT_NAME)
    loaded = [ctx.manager.loaded.spec] if ctx.manager.loaded else []
    return list(dict.fromkeys(["default", *loaded, *local]))


def _dataset_choices(ctx: Context) -> list[tuple[str, str]]:
    saved = [(d.label, d.name) for d in list_datasets(ctx.workspace) if d.trainable]
    return saved + [(f"example: {p.name}", str(p)) for p in sorted(EXAMPLES.glob("*.jsonl"))]


def _run_names(ctx: Context) -> list[str]:
    return [r.name for r in runs.list_runs(ctx.workspace)]


def _default_run(ctx: Context) -> str | None:
    """The live run if there is one (re-attaching after a reload), else the newest."""
    active = runs.active_run(ctx.workspace)
    names = _run_names(ctx)
    return active.name if active else (names[0] if names else None)


# ---- what a run shows ----------------------------------------------------------------------------

def _duration(seconds) -> str:
    return plan.duration(seconds) if seconds is not None else "…"


def progress_text(run: runs.Run | None) -> str:
    if run is None:
        return "No run yet: choose a model, a data set and a preset, look at the plan, then Start."
    state = run.state
    lines = [f"### {run.name}: {state}"]
    last = run.progress()
    if last:
        share = last["step"] / last["max_steps"] if last.get("max_steps") else 0
        bar = "█" * round(share * 30) + "░" * (30 - round(share * 30))
        lines.append(f"`{bar}` step **{last['step']} / {last['max_steps']}** ({100 * share:.0f}%), epoch "
                     f"{last['epoch']:.2f}")
        parts = [f"loss **{last['loss']:.3f}**", f"learning rate {last['learning_rate']:.2e}",
                 f"{last['tokens_per_s']:.0f} tokens/s" if last.get("tokens_per_s") else "measuring speed",
                 f"memory {last['memory_gb']:.1f} GB (peak {last['peak_memory_gb']:.1f})"]
        if run.live:
            parts.append(f"ETA {_duration(last.get('eta_s'))}")
        lines.append(" · ".join(parts))
    elif run.live:
        lines.append("Starting: loading the model and the data…")
    if run.status.get("error"):
        lines.append(f"**{run.status['error']}**")
    if run.status.get("advice"):
        lines.append(run.status["advice"])
    if run.adapter and not run.live:
        lines.append(f"Adapter: `{run.adapter}`")
    return "  \n".join(lines)


def charts(run: runs.Run | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The loss and learning-rate charts' data; None before the first step. (An empty frame would
    make the loss chart take its 'series' colours for numbers, and then draw no line at all.)"""
    steps = run.current("step") if run else []
    if not steps:
        return None, None
    frame = pd.DataFrame({"step": [e["step"] for e in steps], "loss": [e["loss"] for e in steps],
                          "learning rate": [e.get("learning_rate") or 0.0 for e in steps]})
    evals = run.current("eval")
    loss = pd.concat([
        frame[["step", "loss"]].assign(series="training loss"),
        pd.DataFrame({"step": [e["step"] for e in evals], "loss": [e["eval_loss"] for e in evals],
                      "series": "held-out loss"}),
    ], ignore_index=True)
    return loss, frame[["step", "learning rate"]]


def log_tail(run: runs.Run | None) -> str:
    if run is None:
        return ""
    lines = []
    for e in run.events:
        when = e.get("time", "")[11:19]
        if e["type"] == "message":
            lines.append(f"{when} {'ERROR ' if e.get('level') == 'error' else ''}{e['text']}")
        elif e["type"] == "step":
            lines.append(f"{when} step {e['step']}: loss {e['loss']:.4f}, lr {e['learning_rate']:.2e}, "
                         f"grad norm {e.get('grad_norm') or 0:.3f}")
        elif e["type"] == "eval":
            lines.append(f"{when} held-out loss {e['eval_loss']:.4f} at step {e['step']}")
    return "\n".join(lines[-LOG_LINES:])


def probe_table(run: runs.Run | None) -> pd.DataFrame:
    headers, rows = probes.grid(run.probes if run else [])
    return pd.DataFrame(rows, columns=headers)


def runs_table(ctx: Context) -> pd.DataFrame:
    rows = []
    for r in runs.list_runs(ctx.workspace):
        try:
            config = r.config
            model, dataset, preset = config.model.name_or_path, Path(config.dataset).name, config.preset or ""
        except ValueError:
            model = dataset = preset = "(unreadable run.yaml)"
        last = r.progress()
        created = r.status.get("created", "")
        rows.append([r.name, r.state, f"{last['step']}/{last['max_steps']}" if last else "",
                     round(last["loss"], 3) if last else None, preset, model, dataset,
                     datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M") if created else ""])
    return pd.DataFrame(rows, columns=["run", "state", "step", "loss", "preset", "model", "data set", "created"])


def _signature(ctx: Context, name: str | None) -> str:
    """Changes whenever a run is added, removed, or writes its status, events or probes."""
    parts = []
    for r in runs.list_runs(ctx.workspace):
        files = [r.path / f for f in (runs.STATUS_FILE, runs.EVENTS_FILE, runs.PROBES_FILE)]
        parts.append(f"{r.name}:{r.state}:" + ":".join(str(f.stat().st_mtime_ns) if f.exists() else "-" for f in files))
    return f"{name}|" + "|".join(parts)


# ---- the tab -------------------------------------------------------------------------------------

def render(ctx: Context) -> None:
    gr.Markdown(
        "Train a LoRA adapter. Pick a model, a data set and a preset, adjust anything under *Advanced*, look at "
        "the plan (what trains, whether it fits, how long it takes), then **Start**. Training runs in its own "
        "process: closing this page or restarting the app does not stop it."
    )
    pirate = str(EXAMPLES / "pirate.jsonl")
    initial = dict(zip(PATHS, form_values(presets.build("quick-test", pirate))))
    with gr.Row():
        model = gr.Dropdown(_model_choices(ctx), value="default", label="Model", allow_custom_value=True,
                            info=advice("model.name_or_path"), elem_id="train-model")
        dataset = gr.Dropdown(_dataset_choices(ctx), value=pirate, label="Data set",
                              allow_custom_value=True, info=advice("dataset"), elem_id="train-dataset")
        preset = gr.Dropdown([(p.title, p.name) for p in presets.presets().values()], value="quick-test",
                             label="Preset", elem_id="train-preset")
    preset_help = gr.Markdown(presets.presets()["quick-test"].summary)

    fields: list[gr.components.Component] = []
    with gr.Accordion("Advanced parameters", open=False):
        for title, paths in SECTIONS.items():
            gr.Markdown(f"**{title}**")
            for i in range(0, len(paths), 3):
                with gr.Row():
                    for path in paths[i:i + 3]:
                        fields.append(_component(path, initial[path]))
    with gr.Accordion("Probe prompts", open=False):
        gr.Markdown("Answered greedily by the untrained model and at each checkpoint, to watch the answers change.")
        fields += [_component(p, initial[p]) for p in ("probes.prompts", "probes.max_new_tokens")]

    with gr.Row():
        plan_button = gr.Button("Plan", elem_id="train-plan")
        measure_button = gr.Button("Measure speed (a few real steps)", elem_id="train-measure")
        name = gr.Textbox(label="Run name", placeholder="automatic", scale=2, elem_id="train-name")
        start = gr.Button("Start", variant="primary", elem_id="train-start")
    plan_text = gr.Markdown(elem_id="train-plan-text")
    fix_state = gr.State([])
    with gr.Row():
        fix_buttons = [gr.Button(visible=False, size="sm", elem_id=f"train-fix-{i}") for i in range(MAX_FIXES)]

    gr.Markdown("### Run")
    with gr.Row():
        selected = gr.Dropdown(_run_names(ctx), value=lambda: _default_run(ctx), label="Run", scale=3,
                               allow_custom_value=True, elem_id="train-run")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        more = gr.Number(0, label="More epochs", precision=None, minimum=0,
                         info="To continue a finished run; 0 resumes where it stopped.", elem_id="train-more")
        resume = gr.Button("Resume", elem_id="train-resume")
    progress = gr.Markdown(elem_id="train-progress")
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", color="series", title="Loss (keep it roughly between 0.5 and 1.5)",
                                height=260, elem_id="train-loss")
        lr_plot = gr.LinePlot(x="step", y="learning rate", title="Learning rate", height=260, elem_id="train-lr")
    with gr.Accordion("Probe answers (step x prompt)", open=True):
        probe_grid = gr.Dataframe(probe_table(None), wrap=True, interactive=False, elem_id="train-probes")
    log = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, interactive=False, elem_id="train-log")

    gr.Markdown("### Runs")
    table = gr.Dataframe(runs_table(ctx), interactive=False, elem_id="train-runs")
    with gr.Row():
        new_name = gr.Textbox(label="New name", scale=2)
        rename = gr.Button("Rename")
        duplicate = gr.Button("Duplicate config into the form")
        delete = gr.Button("Delete", variant="stop")
    message = gr.Markdown(elem_id="train-message")
    timer = gr.Timer(2.0)
    seen = gr.State(None)

    inputs = [model, dataset, preset, *fields]
    live_outputs = [progress, loss_plot, lr_plot, probe_grid, log]

    def show(name):
        run = runs.load_run(ctx.workspace, name) if name else None
        loss, lr = charts(run)
        return progress_text(run), loss, lr, probe_table(run), log_tail(run)

    def refresh(name):
        """The live panel of the chosen run and the runs list, with the run picker's choices."""
        names = _run_names(ctx)
        if name not in names:
            name = _default_run(ctx)
        return (gr.update(choices=names, value=name), *show(name), runs_table(ctx))

    def tick(name, seen):
        """Every two seconds: redraw only when a run folder changed."""
        now = _signature(ctx, name)
        if now == seen:
            return (*(gr.update() for _ in refresh_outputs), seen)
        return (*refresh(name), now)

    def plan_outputs(p: plan.Plan):
        buttons = [gr.update(visible=i < len(p.fixes), value=p.fixes[i].label if i < len(p.fixes) else "")
                   for i in range(MAX_FIXES)]
        return (p.summary(), p.fixes, *buttons)

    @friendly
    def pick_preset(choice, model, dataset):
        config = presets.build(choice, dataset or "-", model or "default")
        return (presets.presets()[choice].summary, *form_values(config))

    @friendly
    def make_plan(model, dataset, preset, *values):
        return plan_outputs(plan.make(config_from(model, dataset, preset, list(values)), ctx.workspace, ctx.hardware))

    @friendly
    def measure(model, dataset, preset, *values, progress=gr.Progress()):
        progress(0, desc="Timing a few real training steps in a worker process…")
        config = config_from(model, dataset, preset, list(values))
        plan.measure(config, ctx.workspace)
        return plan_outputs(plan.make(config, ctx.workspace, ctx.hardware))

    def apply_fix(i):
        @friendly
        def handler(fixes, model, dataset, preset, *values):
            config = with_changes(config_from(model, dataset, preset, list(values)), fixes[i].changes)
            return (*form_values(config),
                    *plan_outputs(plan.make(config, ctx.workspace, ctx.hardware)))
        return handler

    @friendly
    def do_start(name, model, dataset, preset, *values):
        config = config_from(model, dataset, preset, list(values))
        if ctx.hardware.device == "cuda" and ctx.manager.loaded:
            ctx.manager.unload()  # the GPU memory goes to training
        run = runs.start_run(ctx.workspace, config, (name or "").strip() or None)
        return (f"Started **{run.name}**.", *refresh(run.name))

    @friendly
    def do_stop(name):
        if not name:
            raise ValueError("Choose a run first.")
        runs.stop_run(ctx.workspace, name)
        return (f"Stopping **{name}**: it saves a checkpoint and the adapter after the current step.", *refresh(name))

    @friendly
    def do_resume(name, more_epochs):
        if not name:
            raise ValueError("Choose a run first.")
        run = runs.resume_run(ctx.workspace, name, float(more_epochs or 0))
        return (f"Resumed **{run.name}**.", *refresh(name))

    @friendly
    def do_rename(name, new):
        if not name:
            raise ValueError("Choose a run first.")
        run = runs.rename_run(ctx.workspace, name, (new or "").strip())
        return (f"Renamed **{name}** to **{run.name}**.", *refresh(run.name))

    @friendly
    def do_delete(name):
        if not name:
            raise ValueError("Choose a run first.")
        runs.delete_run(ctx.workspace, name)
        return (f"Deleted **{name}** and its folder.", *refresh(None))

    @friendly
    def do_duplicate(name):
        if not name:
            raise ValueError("Choose a run first.")
        config = runs.load_run(ctx.workspace, name).config
        return (f"The form now holds **{name}**'s config; change what you like and Start.",
                config.model.name_or_path, config.dataset, config.preset or "quick-test", *form_values(config))

    def pick_row(evt: gr.SelectData):
        return evt.row_value[0]

    refresh_outputs = [selected, *live_outputs, table]
    plan_targets = [plan_text, fix_state, *fix_buttons]
    preset.input(pick_preset, [preset, model, dataset], [preset_help, *fields], api_visibility="private")
    plan_button.click(make_plan, inputs, plan_targets, api_name="train_plan")
    measure_button.click(measure, inputs, plan_targets, api_name="train_measure")
    for i, button in enumerate(fix_buttons):
        button.click(apply_fix(i), [fix_state, *inputs], [*fields, *plan_targets], api_visibility="private")
    start.click(do_start, [name, *inputs], [message, *refresh_outputs], api_name="train_start")
    stop.click(do_stop, selected, [message, *refresh_outputs], api_name="train_stop")
    resume.click(do_resume, [selected, more], [message, *refresh_outputs], api_name="train_resume")
    rename.click(do_rename, [selected, new_name], [message, *refresh_outputs], api_visibility="private")
    delete.click(do_delete, selected, [message, *refresh_outputs], api_visibility="private")
    duplicate.click(do_duplicate, selected, [message, model, dataset, preset, *fields], api_visibility="private")
    table.select(pick_row, None, selected, api_visibility="private")
    selected.input(friendly(show), selected, live_outputs, api_visibility="private")
    timer.tick(friendly(tick), [selected, seen], [*refresh_outputs, seen], api_visibility="private",
               show_progress="hidden")
