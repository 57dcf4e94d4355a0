"""Start here: a first fine-tune in five steps for someone who has never done one (goal, data, plan, training,
the answers before and after, an export for Ollama). Each step appears once the one before is done, says
what happens next and how long it takes, and explains its words the first time they appear. Every decision
is engine.guide's; this module lays the steps out and calls it."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from engine import glossary, guide
from engine.i18n import tr
from engine.train import runs
from ui.access import visitor_ok
from ui.context import Context
from ui.dataset_view import preview_html
from ui.i18n import _, t
from ui.train_view import progress_text
from ui.widgets import bind, follow

EXAMPLE, OWN = "example", "own"
TASTE, FULL = "taste", "full"


def words(*terms: str) -> str:
    """The glossary's sentences for `terms`, as small print under a step."""
    return "\n".join(f"> {_(str(sentence))}  " for sentence in glossary.explain(*terms))


def source_choices(goal_id: str) -> list[tuple[str, str]]:
    """The data choice, naming the goal's example."""
    example = t("Use the example: {title}", title=tr(guide.goal(goal_id).example_title))
    return [(example, EXAMPLE), (t("Bring my own file"), OWN)]


def goal_blurb(goal_id: str) -> tuple:
    """The goal's line, and the data choice back at its example (the files put away)."""
    return tr(guide.goal(goal_id).blurb), gr.Radio(source_choices(goal_id), value=EXAMPLE), gr.Row(visible=False)


def own_file_row(chosen) -> gr.Row:
    return gr.Row(visible=chosen == OWN)


def read_data(ctx: Context, goal_id, source, upload, card) -> tuple:
    """Save the data set and show what will be learned, with two rendered examples."""
    if source == OWN and not upload:
        raise ValueError(t("Choose your file first (JSONL, JSON, CSV, Parquet or a character card), or use the example."))
    prepared = guide.prepare(ctx.workspace, goal_id, upload if source == OWN else None, card)
    shown = "".join(preview_html(p, "conversation", i + 1, f"{i + 1} of {prepared.rows}")
                    for i, p in enumerate(guide.examples(ctx.workspace, prepared)))
    return prepared, tr(guide.summary(prepared)), shown, gr.Column(visible=True)


def plan_for(ctx: Context, prepared, length) -> tuple:
    """The safe config for this machine and its plan in plain words."""
    if prepared is None:
        raise ValueError(t("Read the data first (step 2)."))
    config, made = guide.setup(ctx.workspace, prepared, ctx.hardware, taste=length == TASTE)
    return config, tr(guide.plan_words(made)), gr.Button(interactive=not made.problems)


def start(ctx: Context, config) -> tuple:
    if config is None:
        raise ValueError(t("Make the plan first (step 3)."))
    run, note = guide.start(ctx.workspace, ctx.manager, config)
    said = t("Started **{run}**. {note}", run=run.name, note=note)
    return run.name, said.strip(), gr.Column(visible=True), *watch(ctx, run.name)


def watch(ctx: Context, name) -> tuple:
    """The run's progress, the before-and-after answers once both exist, and the export step then."""
    run = runs.load_run(ctx.workspace, name) if name else None
    rows = guide.side_by_side(run) if run and not run.live else []
    frame = pd.DataFrame(rows, columns=[_("Prompt (never trained on)"), _("Before training"), _("After training")])
    done = bool(rows and run.adapter)
    return progress_text(run), gr.Column(visible=done), frame


def reattach(ctx: Context, name) -> tuple:
    """On page load: the run this path started last (reloaded or restarted meanwhile), with its steps shown."""
    try:
        run = runs.load_run(ctx.workspace, name) if name else guide.latest_run(ctx.workspace)
    except runs.RunError:  # renamed or deleted on the Train tab meanwhile
        run = guide.latest_run(ctx.workspace)
    if run is None:
        return None, gr.Column(visible=False), gr.skip(), gr.Column(visible=False), gr.skip()
    return run.name, gr.Column(visible=True), *watch(ctx, run.name)


@visitor_ok
def follow_run(ctx: Context, name, seen) -> tuple:
    """Every two seconds: redraw only when a run folder changed."""
    now = f"{name}|{runs.fingerprint(ctx.workspace)}"
    if not name or now == seen:
        return gr.skip(), gr.skip(), gr.skip(), seen
    return *watch(ctx, name), now


def export_for_ollama(ctx: Context, name, progress=gr.Progress()) -> str:
    run = runs.load_run(ctx.workspace, name)
    result = guide.export_for_ollama(ctx.workspace, run, lambda share, what: progress(share, desc=what))
    return t("Written: `{path}`. To chat with it in Ollama, run `ollama create {name} -f {modelfile}`, then "
             "`ollama run {name}`.", path=str(result.path), name=name, modelfile=str(result.path / "Modelfile"))


def render(ctx: Context) -> None:
    gr.Markdown(_("## Your first fine-tune, in five steps\nTeach a small model a new way of answering, on this "
                  "computer, without writing code. Each step says what happens next and how long it takes. The "
                  "other tabs hold every setting, for when you want them."))
    gr.Markdown(words("LoRA"))

    gr.Markdown(_("### 1. What should the model learn?"))
    goal = gr.Radio([(_(g.title.template), g.id) for g in guide.GOALS.values()], value="character", show_label=False,
                    elem_id="start-goal")
    first = guide.GOALS["character"]
    blurb = gr.Markdown(_(first.blurb.template))

    gr.Markdown(_("### 2. Bring the examples it learns from\nA few dozen conversations in the style you want are "
                  "enough to hear a change. Reading them takes a few seconds."))
    source = gr.Radio(source_choices("character"), value=EXAMPLE, show_label=False, elem_id="start-source")
    with gr.Row(visible=False) as files:
        upload = gr.File(label=_("Your data file"), type="filepath", elem_id="start-upload")
        card = gr.File(label=_("A character card (optional): it becomes the persona's instructions"),
                       type="filepath", file_types=[".json", ".png"], elem_id="start-card")
    read_button = gr.Button(_("Read the data"), variant="primary", elem_id="start-read")
    with gr.Column(visible=False) as step3:
        summary = gr.Markdown(elem_id="start-summary")
        gr.Markdown(_("Two of the examples, exactly as the model will see them: the highlighted part is what it "
                      "learns to write."))
        shown = gr.HTML(elem_id="start-examples")

        gr.Markdown(_("### 3. The plan for this computer\nA safe setting chosen for this machine. A first taste "
                      "takes a few minutes; the whole preset reads every example more than once."))
        length = gr.Radio([(_("A first taste (a few minutes)"), TASTE), (_("The whole preset"), FULL)], value=TASTE,
                          show_label=False, elem_id="start-length")
        plan_text = gr.Markdown(elem_id="start-plan")
        gr.Markdown(words("epoch", "batch", "learning rate", "out of memory"))
        go = gr.Button(_("Start training"), variant="primary", elem_id="start-go")
        started = gr.Markdown(elem_id="start-started")
    with gr.Column(visible=False) as step4:
        gr.Markdown(_("### 4. Training\nIt runs in its own process: you can close this page and come back. The test "
                      "prompts are answered before the first step and again at the end."))
        progress = gr.Markdown(elem_id="start-progress")
        gr.Markdown(words("loss", "checkpoint", "adapter"))
    with gr.Column(visible=False) as step5:
        gr.Markdown(_("### 5. Before and after\nThe same prompts, none of them in the training data, answered by the "
                      "model before training and after it."))
        side = gr.Dataframe(wrap=True, interactive=False, column_widths=["20%", "40%", "40%"], elem_id="start-side")
        gr.Markdown(_("**Take it home.** One file for Ollama, with the persona's instructions in its Modelfile. "
                      "Writing it and checking that it answers like the model here takes a minute or two."))
        gr.Markdown(words("GGUF", "quantisation"))
        export_button = gr.Button(_("Export for Ollama"), variant="primary", elem_id="start-export")
        exported = gr.Markdown(elem_id="start-exported")

    prepared, config, run_name, seen = gr.State(None), gr.State(None), gr.State(None), gr.State(None)
    private = {"api_visibility": "private"}
    goal.change(visitor_ok(goal_blurb), goal, [blurb, source, files], **private)
    source.change(visitor_ok(own_file_row), source, files, **private)
    read_button.click(bind(read_data, ctx), [goal, source, upload, card], [prepared, summary, shown, step3],
                      **private).then(bind(plan_for, ctx), [prepared, length], [config, plan_text, go], **private)
    length.change(bind(plan_for, ctx), [prepared, length], [config, plan_text, go], **private)
    go.click(bind(start, ctx), config, [run_name, started, step4, progress, step5, side], **private)
    gr.Timer(2.0).tick(bind(follow_run, ctx), [run_name, seen], [progress, step5, side, seen], show_progress="hidden",
                       **private)
    export_button.click(bind(export_for_ollama, ctx), run_name, exported, **private)
    follow(ctx, bind(reattach, ctx), run_name, [run_name, step4, progress, step5, side])
