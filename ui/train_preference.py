"""The Train tab's preference tuning: the method (supervised, DPO, ORPO, KTO) with beta, the run to start
from, the runs whose votes add pairs and whether the chat choices do; how many pairs each source gives, with one pair rendered as it
trains (the trained tokens of the chosen and the rejected reply marked); the reward chart of a
preference run. What it decides lives in engine.train (pairs, methods)."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from engine.train import form, pairs, runs
from engine.train.config import RunConfig
from ui.context import Context
from ui.dataset_view import MASKED, TRAINED
from ui.i18n import _, t
from ui.widgets import bind, follow, keep_choice

PATHS = ["method", "preference.beta", "preference.start_from", "preference.votes_from", "preference.chat_choices"]


def start_choices(ctx: Context) -> list[tuple[str, str]]:
    return [(t("none: a fresh adapter on the base model"), ""), *((n, n) for n in pairs.starting_points(ctx.workspace))]


def vote_choices(ctx: Context) -> list[tuple[str, str]]:
    return [(t("{run} ({n} pairs)", run=name, n=n), name) for name, n in pairs.voted_runs(ctx.workspace)]


def chat_box(ctx: Context) -> gr.Checkbox:
    """The chat choices' switch, its label counting the pairs saved so far."""
    return gr.Checkbox(label=t("Chat choices ({n} pairs)", n=len(pairs.from_chat(ctx.workspace).records)))


def fields(ctx: Context, initial: dict, preset: str) -> list[gr.components.Component]:
    """The method's controls, in the order of PATHS."""
    made = []
    with gr.Row():
        for path in PATHS:
            s = form.setting(path, preset)
            if s.kind == "choice":
                made.append(gr.Dropdown(list(s.choices), value=initial[path], label=_(s.label), info=_(s.help),
                                        elem_id="train-method"))
            elif s.kind == "run":
                made.append(gr.Dropdown(start_choices(ctx), value=initial[path], label=_(s.label), info=_(s.help),
                                        allow_custom_value=True, elem_id="train-start-from"))
            elif s.kind == "runs":
                made.append(gr.Dropdown(vote_choices(ctx), value=initial[path], label=_(s.label), info=_(s.help),
                                        multiselect=True, elem_id="train-votes-from"))
            elif s.kind == "bool":
                made.append(gr.Checkbox(initial[path], label=_(s.label), info=_(s.help), elem_id="train-chat-choices"))
            else:
                made.append(gr.Number(initial[path], label=_(s.label), info=_(s.help), elem_id="train-beta"))
    return made


def run_lists(ctx: Context, start: str | None, votes: list | None) -> tuple:
    """The two run lists as the workspace holds them now, keeping what the person chose."""
    voted = vote_choices(ctx)
    kept = [v for v in (votes or []) if v in {value for _, value in voted}]
    return keep_choice(start_choices(ctx), start or "", ""), gr.Dropdown(choices=voted, value=kept)


def _side_html(title: str, p) -> str:
    parts = "".join(f'<span style="{TRAINED if trained else MASKED}">{html.escape(piece)}</span>'
                    for piece, trained in p.segments)
    note = t("{title}: {tokens} tokens, {trained} trained", title=title, tokens=p.tokens, trained=p.trained)
    if p.truncated:
        note += " · " + t("longer than {n} tokens: training cuts it there", n=p.max_seq_length)
    return SIDE.format(note=html.escape(note), parts=parts)


SIDE = ('<p><b>{note}</b></p><pre style="white-space:pre-wrap;word-break:break-word;font-size:13px;padding:8px;'
        'border:1px solid #e5e7eb;border-radius:6px">{parts}</pre>')
TITLES = {"chosen": "Chosen reply", "rejected": "Rejected reply", "completion": "Reply"}


def pairs_view(ctx: Context, config: RunConfig) -> tuple[str, str]:
    """(each source's count, the first pair rendered) for a preference config; a line saying what to do
    for a supervised one."""
    if config.method == "supervised":
        return t("Supervised training learns the data set's replies; choose DPO, ORPO or KTO to train on "
                 "preferences."), ""
    counts, shown = pairs.first_preview(ctx.workspace, config)
    lines = [t("- **{source}:** {n} records", source=name, n=n) for name, n in counts]
    if not lines:
        lines = [t("No source gives preference records yet: pick a data set with chosen and rejected replies, "
                   "runs whose blind Compare votes chose an answer, or the chat choices.")]
    if shown is None:
        return "\n".join(lines), ""
    legend = t("The first record, rendered with the model's chat template; the trained tokens are "
               "highlighted, the prompt is context the model reads but is not taught.")
    sides = "".join(_side_html(t(TITLES[side]), p) for side, p in shown.items())
    return "\n".join(lines), "<p>{}</p>{}".format(html.escape(legend), sides)


def rewards(run: runs.Run | None) -> pd.DataFrame | None:
    """The reward margin and accuracy of a preference run's steps, as one chart's series; None for others."""
    steps = [e for e in (run.current("step") if run else []) if e.get("reward_margin") is not None]
    if not steps:
        return None
    series = (("reward_margin", t("reward margin (chosen - rejected)")),
              ("reward_accuracy", t("reward accuracy (share of pairs ranked right)")))
    rows = [{"step": e["step"], "value": e[key], "series": label} for e in steps for key, label in series
            if e.get(key) is not None]
    return pd.DataFrame(rows)


def reward_chart(ctx: Context, selected: gr.Dropdown, progress: gr.Markdown) -> gr.LinePlot:
    """The reward chart under the loss chart, shown for preference runs and following the live panel."""
    plot = gr.LinePlot(x="step", y="value", color="series", visible=False, height=260, elem_id="train-rewards",
                       title=_("Preference: reward margin (should rise) and accuracy (towards 1)"))

    def update(name):
        try:
            frame = rewards(runs.load_run(ctx.workspace, name) if name else None)
        except runs.RunError:  # renamed or deleted meanwhile
            frame = None
        return gr.LinePlot(value=frame, visible=frame is not None)

    progress.change(update, selected, plot, api_visibility="private", show_progress="hidden")
    return plot


def panel(ctx: Context, method_fields: list, show_pairs, inputs: list) -> None:
    """The sources' counts and the rendered pair, shown on request (`show_pairs(ctx, *inputs)`); the run
    lists follow the workspace."""
    with gr.Accordion(_("Preference data: sources and a rendered pair"), open=False):
        show = gr.Button(_("Count the pairs and show one"), size="sm", elem_id="train-pairs")
        counts = gr.Markdown(elem_id="train-pairs-counts")
        rendered = gr.HTML(elem_id="train-pairs-preview")
    show.click(bind(show_pairs, ctx), inputs, [counts, rendered], api_name="train_pairs")
    follow(ctx, bind(run_lists, ctx), method_fields[2:4], method_fields[2:4])
    follow(ctx, bind(chat_box, ctx), None, method_fields[4])
