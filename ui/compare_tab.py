"""Compare tab: a prompt answered by the base model and a run's adapter (or two checkpoints, or two
runs on the same base) side by side, with the same preset and seed; blind A/B votes and their win
rate, saved with the run; the probe prompts' answers before and after training. Also the `compare`
API endpoint. A session's pending comparison and its votes live in that session's state only."""

from __future__ import annotations

import dataclasses

import gradio as gr

from engine import compare
from engine.compare import prompts, sides, store
from engine.chat.sampling import load_presets
from engine.train.runs import list_runs, load_run
from ui.context import Context
from ui.errors import friendly
from ui.widgets import cancel_flag, seed_box, seed_of, side_choices

INTRO = (
    "Ask the base model and your fine-tuned adapter the same thing, with the same sampling settings and seed. "
    "The base answer comes from the same loaded model with the adapter switched off. **Blind mode** hides "
    "which answer is which: vote for the better one, and the win rate is saved with the run."
)
SAVED_HEADERS = ["Time", "Prompt", "Left", "Right", "Blind vote"]


def _runs(ctx: Context) -> list[str]:
    return [run.name for run in list_runs(ctx.workspace) if sides.of_run(run)]


def _first(ctx: Context) -> str | None:
    names = _runs(ctx)
    return names[0] if names else None


def _fine_tune(ctx: Context, run_name: str | None) -> str | None:
    """The side a run is compared by at first: its final adapter, else its latest checkpoint."""
    found = sides.of_run(load_run(ctx.workspace, run_name)) if run_name else []
    return found[0].spec if found else None


def _win_rates(ctx: Context, run_name: str | None) -> str:
    if not run_name:
        return ""
    tallies = store.win_rates(load_run(ctx.workspace, run_name).path)
    if not tallies:
        return "**Win rate (saved with the run):** no blind votes yet. Turn on blind mode, compare, and vote."
    return "**Win rate (saved with the run):**  \n" + "  \n".join(t.summary(sides.label_of) for t in tallies)


def _saved(ctx: Context, run_name: str | None) -> list[list[str]]:
    rows = []
    for r, vote in store.history(load_run(ctx.workspace, run_name).path) if run_name else []:
        verdict = "" if not r["blind"] else "not voted" if not vote else (
            "tie" if vote["winner"] is None else f"{sides.label_of(vote['winner'])} won")
        rows.append([r["time"].replace("T", " ")[:16], r["messages"][-1]["content"][:120],
                     sides.label_of(r["sides"][0]), sides.label_of(r["sides"][1]), verdict])
    return rows


def _probe_rows(ctx: Context, run_name: str | None) -> tuple[list[list[str]], str]:
    if not run_name:
        return [], ""
    step, rows = prompts.before_after(load_run(ctx.workspace, run_name))
    if not rows:
        return [], "This run has no probe answers (it has no probe prompts, or has not started)."
    after = f"after step {step}" if step else "not trained yet"
    return [list(r) for r in rows], f"The probe prompts answered greedily before training (step 0) and {after}."


def _examples(ctx: Context, run_name: str | None) -> tuple[list[dict], str]:
    if not run_name:
        return [], ("No run has an adapter yet: train one on the Train tab (it saves one at each checkpoint), "
                    "then press Refresh runs.")
    run = load_run(ctx.workspace, run_name)
    found = prompts.probes(run)
    note = ""
    try:
        held = prompts.held_out(run, ctx.workspace)
        if not held:
            note = "The run held out no rows of its data set (its eval split is 0), so only its probe prompts are here."
        found += held
    except ValueError as e:
        note = f"The held-out rows cannot be read: {e}"
    return [dataclasses.asdict(e) for e in found], note


def _example_choices(examples: list[dict]) -> list[tuple[str, int]]:
    counts = {"probe": 0, "held-out": 0}
    choices = []
    for i, e in enumerate(examples):
        counts[e["source"]] += 1
        text = e["messages"][-1]["content"]
        choices.append((f"{e['source'].capitalize()} {counts[e['source']]}: {text[:80]}", i))
    return choices


def render(ctx: Context) -> None:
    gr.Markdown(INTRO)
    run_names = _runs(ctx)
    with gr.Row():
        run = gr.Dropdown(run_names, value=run_names[0] if run_names else None, label="Run", scale=4,
                          elem_id="compare-run", info="Comparisons and blind votes are saved with this run.")
        refresh = gr.Button("Refresh runs", size="sm", scale=0, min_width=120, elem_id="compare-refresh")
    with gr.Row():
        choices = side_choices(ctx)
        left = gr.Dropdown(choices, value=sides.BASE, label="Left: measured against", elem_id="compare-left-side")
        right = gr.Dropdown(choices, value=None, label="Right: the fine-tune", elem_id="compare-right-side",
                            info="A run's final adapter or a checkpoint; two runs must share the loaded base model.")
    example = gr.Dropdown([], value=None, label="A prompt from the run (optional)", elem_id="compare-example",
                          info="Its probe prompts, and held-out rows of its data set (never trained on).")
    prompt = gr.Textbox(label="Prompt", lines=3, elem_id="compare-prompt", placeholder="Type a prompt, or pick one above")
    reference = gr.Markdown(elem_id="compare-reference")
    with gr.Row():
        presets = list(load_presets())
        preset = gr.Dropdown(presets, value="Precise" if "Precise" in presets else presets[0], label="Sampling preset",
                             elem_id="compare-preset", info="The same on both sides.")
        max_new = gr.Slider(1, 1024, 256, step=1, label="Max new tokens", elem_id="compare-max-new")
        seed = seed_box("Empty: one is drawn for each comparison and used on both sides.", "compare-seed")
        blind = gr.Checkbox(False, label="Blind mode (A/B, then vote)", elem_id="compare-blind")
    with gr.Row():
        go = gr.Button("Compare", variant="primary", elem_id="compare-go")
        stop = gr.Button("Stop", elem_id="compare-stop")
    with gr.Row():
        answer_a = gr.Textbox(label="Left", lines=10, interactive=False, elem_id="compare-a")
        answer_b = gr.Textbox(label="Right", lines=10, interactive=False, elem_id="compare-b")
    with gr.Row(visible=False) as votes:
        vote_a = gr.Button("A is better", elem_id="vote-a")
        vote_tie = gr.Button("Tie", elem_id="vote-tie")
        vote_b = gr.Button("B is better", elem_id="vote-b")
    result = gr.Markdown(elem_id="compare-result")
    win_rate = gr.Markdown(elem_id="compare-winrate")
    with gr.Accordion("Before and after training: the probe prompts", open=True):
        probe_note = gr.Markdown()
        probe_table = gr.Dataframe(headers=["Prompt", "Before training", "After training"], wrap=True,
                                   interactive=False, elem_id="compare-probes")
    with gr.Accordion("Saved comparisons of this run", open=False):
        saved = gr.Dataframe(headers=SAVED_HEADERS, wrap=True, interactive=False, elem_id="compare-saved")
    examples = gr.State([])  # this session's list of the run's prompts
    pending = gr.State(None)  # this session's blind comparison waiting for its vote
    my_votes = gr.State([])  # this session's votes

    @friendly
    def show_run(name):
        found, note = _examples(ctx, name)
        rows, probe_text = _probe_rows(ctx, name)
        return (gr.Dropdown(value=sides.BASE), gr.Dropdown(value=_fine_tune(ctx, name)), found,
                gr.Dropdown(choices=_example_choices(found), value=None), note, rows, probe_text,
                _win_rates(ctx, name), _saved(ctx, name))

    def refresh_runs(name):
        names, choices_now = _runs(ctx), side_choices(ctx)
        return (gr.Dropdown(choices=names, value=name if name in names else _first(ctx)),
                gr.Dropdown(choices=choices_now), gr.Dropdown(choices=choices_now))

    def on_load():
        """A page (re)load lists the runs trained since the app started and shows the first one."""
        name, choices_now = _first(ctx), side_choices(ctx)
        return (gr.Dropdown(choices=_runs(ctx), value=name), gr.Dropdown(choices=choices_now, value=sides.BASE),
                gr.Dropdown(choices=choices_now, value=_fine_tune(ctx, name)), *show_run(name)[2:])

    def pick_example(index, found):
        if index is None or not 0 <= index < len(found):
            return gr.Textbox(), ""
        e = found[index]
        context = e["messages"][:-1]
        lines = []
        if context:
            lines.append(f"Asked after {len(context)} earlier message{'s' if len(context) != 1 else ''} of the row "
                         "(a system prompt or earlier turns), which both sides see too.")
        if e["reference"]:
            lines.append(f"**The data set's reply:** {e['reference']}")
        return e["messages"][-1]["content"], "  \n".join(lines)

    @friendly
    def run_compare(name, left_spec, right_spec, index, found, text, preset_name, max_tokens, seed_value, is_blind,
                    request: gr.Request):
        messages, source = [{"role": "user", "content": text or ""}], "typed"
        if index is not None and 0 <= index < len(found) and found[index]["messages"][-1]["content"] == text:
            messages, source = list(found[index]["messages"]), found[index]["source"]
        sampling = compare.sampling_for(preset_name, max_tokens, seed_of(seed_value))
        comparison = compare.prepare(ctx.manager, ctx.workspace, messages, left_spec, right_spec, sampling,
                                     preset_name, bool(is_blind), source)
        first, second = comparison.shown
        labels = ("Answer A", "Answer B") if comparison.blind else (first.label, second.label)
        cancel = cancel_flag(request)
        cancel.clear()
        seed_text = "greedy decoding (no randomness)" if sampling.greedy else f"seed {sampling.seed}"
        rates, saved_rows = _win_rates(ctx, name), _saved(ctx, name)
        for a, b in compare.stream(ctx.manager, comparison, cancel):
            yield (gr.Textbox(a, label=labels[0]), gr.Textbox(b, label=labels[1]), gr.Row(visible=False),
                   f"Answering… ({preset_name}, {seed_text})", None, rates, saved_rows)
        # The last yield holds both answers in full: Gradio sends it whole when the event completes, so the page
        # ends with the saved answers even if a streamed piece was missed on the way (seen once with gr.skip()).
        answers = (gr.Textbox(comparison.reply(first), label=labels[0]),
                   gr.Textbox(comparison.reply(second), label=labels[1]))
        if not comparison.finished:
            yield (*answers, gr.Row(visible=False), "Stopped: this comparison was not saved.", None, rates, saved_rows)
            return
        record = compare.save(ctx.workspace, comparison)
        if comparison.blind:
            message = (f"Both answers use {preset_name} with {seed_text}. Which is better? Vote: the answers are "
                       "revealed after.")
        else:
            message = "  \n".join(
                [f"Same preset ({preset_name}) and {seed_text} on both sides; saved with the run."]
                + [f"**{s.label}:** {comparison.stats.get(s.spec, '')}" for s in comparison.shown])
        yield (*answers, gr.Row(visible=comparison.blind), message, record if comparison.blind else None,
               _win_rates(ctx, name), _saved(ctx, name))

    def do_stop(request: gr.Request):
        cancel_flag(request).set()

    def voter(choice):
        @friendly
        def cast(record, mine, name):
            if not record:
                raise gr.Error("There is no blind comparison waiting for a vote: compare with blind mode on first.")
            vote = store.vote(ctx.workspace, record, choice)
            mine = mine + [vote]
            a, b = (sides.label_of(s) for s in record["shown"])
            verdict = "a tie" if choice == "tie" else f"**{sides.label_of(vote['winner'])}**"
            yours = "  \n".join(t.summary(sides.label_of) for t in store.tally(mine))
            message = (f"A was **{a}**, B was **{b}**: you chose {verdict}.  \n**Your votes in this session:**  \n"
                       f"{yours}")
            return (message, gr.Row(visible=False), None, mine, _win_rates(ctx, name), _saved(ctx, name),
                    gr.Textbox(label=f"A: {a}"), gr.Textbox(label=f"B: {b}"))
        return cast

    shown_run = [left, right, examples, example, reference, probe_table, probe_note, win_rate, saved]
    run.change(show_run, run, shown_run, api_visibility="private")
    gr.on(None, on_load, None, [run, *shown_run], api_visibility="private")
    refresh.click(refresh_runs, run, [run, left, right], api_visibility="private")
    example.input(pick_example, [example, examples], [prompt, reference], api_visibility="private")
    go.click(run_compare, [run, left, right, example, examples, prompt, preset, max_new, seed, blind],
             [answer_a, answer_b, votes, result, pending, win_rate, saved], api_visibility="private")
    stop.click(do_stop, None, None, api_visibility="private")
    for button, choice in ((vote_a, "a"), (vote_b, "b"), (vote_tie, "tie")):
        button.click(voter(choice), [pending, my_votes, run],
                     [result, votes, pending, my_votes, win_rate, saved, answer_a, answer_b], api_visibility="private")

    @friendly
    def compare_api(prompt: str, run: str, preset: str = "Precise", max_new_tokens: int = 256) -> tuple[str, str]:
        """The base model's reply and the fine-tuned one (a run's final adapter, or RUN:checkpoint-N) to one
        prompt, with the same preset and seed; saved with the run."""
        return compare.compare(ctx.manager, ctx.workspace, prompt, run, preset, max_new_tokens)

    gr.api(compare_api, api_name="compare")
