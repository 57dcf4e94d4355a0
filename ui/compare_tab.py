"""Compare tab: a prompt answered by the base model and a run's adapter (or two checkpoints, or two runs
on the same base) side by side, both streamed at once with the same preset and seed; blind A/B votes and
their win rate, saved with the run; the probe prompts' answers before and after training. Also the
`compare` API endpoint. A session's pending comparison and its votes live in that session's state only.
The handlers are plain functions of the context; the run list and the sides follow the workspace."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd

from engine import compare
from engine.compare import prompts, sides, store
from engine.chat.sampling import load_presets
from engine.train.runs import list_runs, load_run
from ui.access import visitor_ok
from ui.context import Context
from ui.errors import said
from ui.i18n import _, t, tr
from ui.widgets import (bind, cancel_flag, follow, keep_choice, preset_choices, seed_box, seed_of, side_choices,
                        thinking_box)

INTRO = (
    "Ask the base model and your fine-tuned adapter the same thing, with the same sampling settings and seed: "
    "both answers are written at the same time. The base answer comes from the same loaded model with the "
    "adapter switched off. **Blind mode** hides which answer is which: vote for the better one, and the win "
    "rate is saved with the run."
)
SAVED_HEADERS = ["Time", "Prompt", "Left", "Right", "Blind vote"]
PROBE_HEADERS = ["Prompt", "Before training", "After training"]
NO_ADAPTER = ("No run has an adapter yet: train one on the Train tab (it saves one at each checkpoint); it appears "
              "here by itself.")
NO_RANDOMNESS = "no randomness (the most likely next word each time)"
NO_THIRD = ""  # the third side's value when there is none


# ---- what a run shows ----------------------------------------------------------------------------

def run_names(ctx: Context) -> list[str]:
    """The runs that have an adapter (a final one or a checkpoint), newest first."""
    return [run.name for run in list_runs(ctx.workspace) if sides.of_run(run)]


def fine_tune(ctx: Context, run_name: str | None) -> str | None:
    """The side a run is compared by at first: its final adapter, else its latest checkpoint."""
    found = sides.of_run(load_run(ctx.workspace, run_name)) if run_name else []
    return found[0].spec if found else None


def started_from(ctx: Context, run_name: str | None) -> str:
    """The third side a run is compared with at first: for a preference run, the supervised run it started
    from (base, supervised and preference-tuned side by side); none for others."""
    start = load_run(ctx.workspace, run_name).config.preference.start_from if run_name else ""
    return (fine_tune(ctx, start) if start and start in run_names(ctx) else None) or NO_THIRD


def third_choices(ctx: Context) -> list[tuple[str, str]]:
    return [(t("None: two sides"), NO_THIRD), *side_choices(ctx)]


def win_rates(ctx: Context, run_name: str | None) -> str:
    if not run_name:
        return ""
    tallies = store.win_rates(load_run(ctx.workspace, run_name).path)
    if not tallies:
        return t("**Win rate (saved with the run):** no blind votes yet. Turn on blind mode, compare, and vote.")
    return t("**Win rate (saved with the run):**  \n{rates}",
             rates="  \n".join(tr(tally.summary(sides.label_of)) for tally in tallies))


def saved_rows(ctx: Context, run_name: str | None) -> pd.DataFrame:
    rows = []
    for r, vote in store.history(load_run(ctx.workspace, run_name).path) if run_name else []:
        verdict = "" if not r["blind"] else t("not voted") if not vote else (
            t("tie") if vote["winner"] is None else t("{side} won", side=sides.label_of(vote["winner"])))
        rows.append([r["time"].replace("T", " ")[:16], r["messages"][-1]["content"][:120],
                     tr(sides.label_of(r["sides"][0])), " | ".join(tr(sides.label_of(s)) for s in r["sides"][1:]),
                     verdict])
    return pd.DataFrame(rows, columns=[t(h) for h in SAVED_HEADERS])


def probe_rows(ctx: Context, run_name: str | None) -> tuple[pd.DataFrame, str]:
    step, rows = prompts.before_after(load_run(ctx.workspace, run_name)) if run_name else (0, [])
    frame = pd.DataFrame([list(r) for r in rows], columns=[t(h) for h in PROBE_HEADERS])
    if not run_name:
        return frame, ""
    if not rows:
        return frame, t("This run has no probe answers (it has no probe prompts, or has not started).")
    after = t("after step {step}", step=step) if step else t("not trained yet")
    return frame, t("The probe prompts answered with {how}, before training (step 0) and {after}.",
                                      how=t(NO_RANDOMNESS), after=after)


def run_examples(ctx: Context, run_name: str | None) -> tuple[list[dict], str]:
    """The run's prompts (probes, then held-out rows) as plain dicts for the session, and a note on them."""
    if not run_name:
        return [], t(NO_ADAPTER)
    run = load_run(ctx.workspace, run_name)
    found = prompts.probes(run)
    note = ""
    try:
        held = prompts.held_out(run, ctx.workspace)
        if not held:
            note = t("The run held out no rows of its data set (its eval split is 0), so only its probe prompts are here.")
        found += held
    except ValueError as e:
        note = t("The held-out rows cannot be read: {problem}", problem=said(e))
    return [dataclasses.asdict(e) for e in found], note


def example_choices(examples: list[dict]) -> list[tuple[str, int]]:
    counts = {"probe": 0, "held-out": 0}
    choices = []
    for i, e in enumerate(examples):
        counts[e["source"]] += 1
        text = e["messages"][-1]["content"]
        shown = "Probe {n}: {text}" if e["source"] == "probe" else "Held-out {n}: {text}"
        choices.append((t(shown, n=counts[e["source"]], text=text[:80]), i))
    return choices


# ---- handlers ------------------------------------------------------------------------------------

def _run_view(ctx: Context, name: str | None, example: int | None = None) -> tuple:
    """[examples, example, reference, probe_table, probe_note, win_rate, saved] for a run."""
    found, note = run_examples(ctx, name)
    rows, probe_note = probe_rows(ctx, name)
    return (found, keep_choice(example_choices(found), example) if example is not None else
            gr.Dropdown(choices=example_choices(found), value=None), note, rows, probe_note,
            win_rates(ctx, name), saved_rows(ctx, name))


@visitor_ok
def show_run(ctx: Context, name: str | None) -> tuple:
    """A run chosen: the base against its fine-tune (and the run a preference run started from), and what the
    run holds."""
    return (gr.Dropdown(value=sides.BASE), gr.Dropdown(value=fine_tune(ctx, name)),
            gr.Dropdown(value=started_from(ctx, name)), *_run_view(ctx, name))


def refresh(ctx: Context, name: str | None, left: str | None, right: str | None, third: str | None,
            example: int | None) -> tuple:
    """The lists read again from the workspace (on page load and whenever the tab is shown), keeping the
    person's choices while they exist; with no run chosen, the newest run with an adapter."""
    names, choices = run_names(ctx), side_choices(ctx)
    chosen = name if name in names else (names[0] if names else None)
    if chosen != name:  # a new run: start from the base against its fine-tune
        left, right, third, example = sides.BASE, fine_tune(ctx, chosen), started_from(ctx, chosen), None
    return (gr.Dropdown(choices=names, value=chosen), keep_choice(choices, left, sides.BASE),
            keep_choice(choices, right, fine_tune(ctx, chosen)), keep_choice(third_choices(ctx), third, NO_THIRD),
            *_run_view(ctx, chosen, example))


@visitor_ok
def pick_example(ctx: Context, index: int | None, found: list[dict]) -> tuple:
    if index is None or not 0 <= index < len(found):
        return gr.Textbox(), ""
    e = found[index]
    context = e["messages"][:-1]
    lines = []
    if context:
        asked = ("Asked after {count} earlier message of the row (a system prompt or earlier turns), which both "
                 "sides see too." if len(context) == 1 else
                 "Asked after {count} earlier messages of the row (a system prompt or earlier turns), which both "
                 "sides see too.")
        lines.append(t(asked, count=len(context)))
    if e["reference"]:
        lines.append(t("**The data set's reply:** {reply}", reply=e["reference"]))
    return e["messages"][-1]["content"], "  \n".join(lines)


@visitor_ok
def run_compare(ctx: Context, name, left_spec, right_spec, third_spec, index, found, text, preset_name, max_tokens,
                seed_value, is_blind, think, request: gr.Request):
    """Every side answers at once, streamed into its column; a finished comparison is saved with the run.
    Yields [answer_a, answer_b, answer_c, votes, result, pending, win_rate, saved]."""
    messages, source = [{"role": "user", "content": text or ""}], "typed"
    if index is not None and 0 <= index < len(found) and found[index]["messages"][-1]["content"] == text:
        messages, source = list(found[index]["messages"]), found[index]["source"]
    sampling = compare.sampling_for(preset_name, max_tokens, seed_of(seed_value))
    comparison = compare.prepare(ctx.manager, ctx.workspace, messages, left_spec, right_spec, sampling,
                                 preset_name, bool(is_blind), source, thinking=bool(think),
                                 third=third_spec or None)
    shown = comparison.shown
    labels = (t("Answer A"), t("Answer B")) if comparison.blind else tuple(side.label for side in shown)

    def columns(texts) -> tuple:
        """The answer boxes A, B and the third (hidden with two sides)."""
        boxes = [gr.Textbox(text, label=label) for text, label in zip(texts[:2], labels)]
        return (*boxes, gr.Textbox(texts[2], label=labels[2], visible=True) if len(texts) > 2
                else gr.Textbox("", visible=False))

    cancel = cancel_flag(request)
    cancel.clear()
    how = t(NO_RANDOMNESS) if sampling.greedy else t("seed {seed}", seed=sampling.seed)
    rates, rows = win_rates(ctx, name), saved_rows(ctx, name)
    answering = (t("Answering both sides… ({preset}, {how})", preset=tr(preset_name), how=how) if len(shown) == 2
                 else t("Answering all three sides… ({preset}, {how})", preset=tr(preset_name), how=how))
    for *texts, waiting in compare.stream(ctx.manager, comparison, cancel):
        yield (*columns(texts), gr.Row(visible=False), tr(waiting) if waiting else answering, None, rates, rows)
    # The last yield holds every answer in full: Gradio sends it whole when the event completes, so the page
    # ends with the saved answers even if a streamed piece was missed on the way (seen once with gr.skip()).
    answers = columns([comparison.reply(side) for side in shown])
    if not comparison.finished:
        yield (*answers, gr.Row(visible=False), t("Stopped: this comparison was not saved."), None, rates, rows)
        return
    record = compare.save(ctx.workspace, comparison)
    if comparison.blind:
        message = t("Both answers use {preset} with {how}. Which is better? Vote: the answers are revealed after.",
                    preset=tr(preset_name), how=how)
    else:
        message = "  \n".join(
            [t("Same preset ({preset}) and {how} on both sides; saved with the run.", preset=tr(preset_name), how=how)
             if len(shown) == 2 else
             t("Same preset ({preset}) and {how} on all three sides; saved with the run.", preset=tr(preset_name),
               how=how)]
            + [t("**{side}:** {stats}", side=s.label, stats=tr(comparison.stats.get(s.spec, "")))
               for s in comparison.shown])
    yield (*answers, gr.Row(visible=comparison.blind), message, record if comparison.blind else None,
           win_rates(ctx, name), saved_rows(ctx, name))


@visitor_ok
def stop(ctx: Context, request: gr.Request) -> None:
    cancel_flag(request).set()


@visitor_ok
def vote(ctx: Context, choice: str, record: dict | None, mine: list[dict], name: str | None) -> tuple:
    """A blind vote: the reveal, this session's tally, and the run's saved win rate.
    Returns [result, votes, pending, my_votes, win_rate, saved, answer_a, answer_b]."""
    if not record:
        raise gr.Error(t("There is no blind comparison waiting for a vote: compare with blind mode on first."))
    cast = store.vote(ctx.workspace, record, choice)
    mine = mine + [cast]
    a, b = (sides.label_of(s) for s in record["shown"])
    verdict = t("a tie") if choice == "tie" else f"**{sides.label_of(cast['winner'])}**"
    yours = "  \n".join(tr(tally.summary(sides.label_of)) for tally in store.tally(mine))
    message = t("A was **{a}**, B was **{b}**: you chose {verdict}.  \n**Your votes in this session:**  \n{yours}",
                a=a, b=b, verdict=verdict, yours=yours)
    return (message, gr.Row(visible=False), None, mine, win_rates(ctx, name), saved_rows(ctx, name),
            gr.Textbox(label=t("A: {side}", side=a)), gr.Textbox(label=t("B: {side}", side=b)))


@visitor_ok
def compare_api(ctx: Context, prompt: str, run: str, preset: str = "Precise", max_new_tokens: int = 256) -> tuple[str, str]:
    """The base model's reply and the fine-tuned one (a run's final adapter, or RUN:checkpoint-N) to one
    prompt, with the same preset and seed; saved with the run."""
    return compare.compare(ctx.manager, ctx.workspace, prompt, run, preset, max_new_tokens)


# ---- layout --------------------------------------------------------------------------------------

def render(ctx: Context) -> None:
    gr.Markdown(_(INTRO))
    with gr.Row():
        run = gr.Dropdown([], value=None, label=_("Run"), elem_id="compare-run",
                          info=_("Runs with an adapter, newest first. Comparisons and blind votes are saved with this run."))
    with gr.Row():
        left = gr.Dropdown([], value=None, label=_("Left: measured against"), elem_id="compare-left-side")
        right = gr.Dropdown([], value=None, label=_("Right: the fine-tune"), elem_id="compare-right-side",
                            info=_("A run's final adapter or a checkpoint; two runs must share the loaded base model."))
        third = gr.Dropdown([], value=None, label=_("Third side (optional)"), elem_id="compare-third-side",
                            info=_("A third answer beside the two, e.g. the supervised run a preference run started "
                                   "from (chosen by itself for such a run). Not in blind mode."))
    example = gr.Dropdown([], value=None, label=_("A prompt from the run (optional)"), elem_id="compare-example",
                          info=_("Its probe prompts, and held-out rows of its data set (never trained on)."))
    prompt = gr.Textbox(label=_("Prompt"), lines=3, elem_id="compare-prompt",
                        placeholder=_("Type a prompt, or pick one above"))
    reference = gr.Markdown(elem_id="compare-reference")
    with gr.Row():
        presets = list(load_presets())
        preset = gr.Dropdown(preset_choices(presets), value="Precise" if "Precise" in presets else presets[0],
                             label=_("Sampling preset"), elem_id="compare-preset", info=_("The same on both sides."))
        max_new = gr.Slider(1, 1024, 256, step=1, label=_("Max new tokens"), elem_id="compare-max-new")
        seed = seed_box(_("Empty: one is drawn for each comparison and used on both sides."), "compare-seed")
        blind = gr.Checkbox(False, label=_("Blind mode (A/B, then vote)"), elem_id="compare-blind")
        think = thinking_box("compare-thinking")
    with gr.Row():
        go = gr.Button(_("Compare"), variant="primary", elem_id="compare-go")
        stop_button = gr.Button(_("Stop"), elem_id="compare-stop")
    with gr.Row():
        answer_a = gr.Textbox(label=_("Left"), lines=10, interactive=False, elem_id="compare-a")
        answer_b = gr.Textbox(label=_("Right"), lines=10, interactive=False, elem_id="compare-b")
        answer_c = gr.Textbox(label=_("Third"), lines=10, interactive=False, visible=False, elem_id="compare-c")
    with gr.Row(visible=False) as votes:
        vote_a = gr.Button(_("A is better"), elem_id="vote-a")
        vote_tie = gr.Button(_("Tie"), elem_id="vote-tie")
        vote_b = gr.Button(_("B is better"), elem_id="vote-b")
    result = gr.Markdown(elem_id="compare-result")
    win_rate = gr.Markdown(elem_id="compare-winrate")
    with gr.Accordion(_("Before and after training: the probe prompts"), open=True):
        probe_note = gr.Markdown()
        probe_table = gr.Dataframe(headers=PROBE_HEADERS, wrap=True,
                                   column_widths=["20%", "40%", "40%"], interactive=False, elem_id="compare-probes")
    with gr.Accordion(_("Saved comparisons of this run"), open=False):
        saved = gr.Dataframe(headers=SAVED_HEADERS, wrap=True, interactive=False, elem_id="compare-saved",
                             column_widths=["12%", "34%", "20%", "20%", "14%"])
    examples = gr.State([])  # this session's list of the run's prompts
    pending = gr.State(None)  # this session's blind comparison waiting for its vote
    my_votes = gr.State([])  # this session's votes

    run_view = [examples, example, reference, probe_table, probe_note, win_rate, saved]
    follow(ctx, bind(refresh, ctx), [run, left, right, third, example], [run, left, right, third, *run_view])
    run.input(bind(show_run, ctx), run, [left, right, third, *run_view], api_visibility="private")
    example.input(bind(pick_example, ctx), [example, examples], [prompt, reference], api_visibility="private")
    go.click(bind(run_compare, ctx),
             [run, left, right, third, example, examples, prompt, preset, max_new, seed, blind, think],
             [answer_a, answer_b, answer_c, votes, result, pending, win_rate, saved], api_visibility="private")
    stop_button.click(bind(stop, ctx), None, None, api_visibility="private")
    for button, choice in ((vote_a, "a"), (vote_b, "b"), (vote_tie, "tie")):
        button.click(bind(vote, ctx, choice), [pending, my_votes, run],
                     [result, votes, pending, my_votes, win_rate, saved, answer_a, answer_b], api_visibility="private")
    gr.api(bind(compare_api, ctx), api_name="compare")
