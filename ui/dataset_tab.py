"""Dataset tab: bring a file, see what was detected (and override it), map columns to roles, read
the report of what was kept and dropped, preview examples exactly as training renders them (trained
tokens highlighted) beside the raw record, see the token-length histogram, and save."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
import pandas as pd

from engine.data import RECORD_FORMATS, DataError, Options, Rules, inspect
from engine.data.pipeline import peek
from engine.data.render import has_own_template, preview, shared_tokenizer
from engine.data.rules import REASONS
from engine.data.stats import statistics
from engine.data.store import import_file, list_datasets
from engine.chat.models import resolve_model
from engine.chat.templates import FALLBACKS
from engine.train.config import TEMPLATE_CHOICES
from ui.context import Context
from ui.errors import friendly
from ui.widgets import template_choices

AUTO = "auto (detected)"
FIELDS = ["instruction", "input", "output", "prompt", "response", "messages", "conversations", "text", "history",
          "system", "tools"]  # every field of RECORD_FORMATS, the main ones first
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = {p.name: p for p in sorted([*(EXAMPLES / "data").glob("*.json*"), *(EXAMPLES / "cards").glob("*")])}
FILE_TYPES = [".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt", ".md", ".png"]
SAMPLE_ROWS = 5000  # rows kept in memory for the statistics; saving streams the whole file
TRAINED = "background:#bbf7d0;color:#14532d;border-radius:3px"
MASKED = "color:#6b7280"


def render(ctx: Context) -> None:
    gr.Markdown(
        "Bring the examples the model should learn from: JSON, JSONL, CSV/TSV, Parquet, plain text, or a character "
        "card (JSON or PNG). The shape is detected; everything becomes conversations, and the preview shows the "
        "exact text training sees, with the tokens the model learns to write **highlighted**."
    )
    path = gr.State(None)
    found = gr.State(None)  # the Inspection shown
    with gr.Row():
        with gr.Column(scale=2):
            upload = gr.File(label="Data file (drag and drop)", file_types=FILE_TYPES, type="filepath", elem_id="data-file")
            example = gr.Dropdown(list(EXAMPLE_FILES), value=None, label="…or try an example", elem_id="data-example")
        with gr.Column(scale=3):
            detected = gr.Markdown("Upload a file to begin.", elem_id="data-detected")
    with gr.Accordion("Format, columns and rules", open=True):
        with gr.Row():
            fmt = gr.Dropdown([AUTO, *RECORD_FORMATS], value=AUTO, label="Format", elem_id="data-format",
                              info="Leave on auto, or choose the shape of your records.")
            system = gr.Textbox(label="System prompt", placeholder="Added to every conversation that has none",
                                info="e.g. You are Captain Bess, a pirate who ends every reply with 'Arr, matey!'")
        with gr.Row():
            columns = [gr.Dropdown([], label=field, visible=False, allow_custom_value=False, elem_id=f"map-{field}")
                       for field in FIELDS]
        with gr.Row():
            min_chars = gr.Number(Rules.min_chars, precision=0, minimum=0, label="Minimum length (characters)",
                                  info="Shorter conversations are dropped.")
            require_system = gr.Checkbox(False, label="Require a system turn", info="Drop conversations without one.")
            apply = gr.Button("Apply", elem_id="data-apply")
    report = gr.Markdown(elem_id="data-report")

    gr.Markdown("### Preview: what training sees")
    with gr.Row():
        model = gr.Textbox(_model_spec(ctx), label="Render for model", info="'default', a folder, or a Hub id")
        template = gr.Radio(template_choices(TEMPLATE_CHOICES), value="model", label="Chat template")
        fallback = gr.Radio(template_choices(FALLBACKS), value="chatml", visible=False,
                            label="This model has no chat template: render with")
        max_len = gr.Number(2048, precision=0, minimum=16, label="Max sequence length",
                            info="Longer examples are cut here during training.")
    with gr.Row():
        with gr.Column(scale=3):
            which = gr.Slider(1, 5, 1, step=1, label="Example", elem_id="data-which")
            rendered = gr.HTML(elem_id="data-rendered")
        with gr.Column(scale=2):
            raw = gr.JSON(label="The record in your file")
    with gr.Row():
        histogram = gr.BarPlot(None, x="tokens", y="examples", title="Tokens per example", x_title="tokens",
                               y_title="examples", y_lim=[0, None], height=260, elem_id="data-histogram")
        stats = gr.Markdown(elem_id="data-stats")

    gr.Markdown("### Save")
    with gr.Row():
        name = gr.Textbox(label="Name", placeholder="e.g. pirate-v1", elem_id="data-name")
        overwrite = gr.Checkbox(False, label="Replace a data set of this name")
        save = gr.Button("Save", variant="primary", elem_id="data-save")
    saved_note = gr.Markdown(elem_id="data-saved")
    saved = gr.Dataframe(_saved(ctx), label="Saved data sets", interactive=False, elem_id="data-saved-list")

    @friendly
    def analyse(file, chosen, system, min_chars, require_system, use_mapping, progress=gr.Progress(), *mapped):
        if not file:
            return _blank()
        try:
            detection = peek(file)
        except DataError as e:
            return ("", f"**This file can't be used.** {e}", *_hidden(), None, gr.update())
        shown = chosen if chosen != AUTO else detection.format
        fields = RECORD_FORMATS[shown].fields if shown else {}
        mapping = dict(zip(FIELDS, mapped)) if use_mapping else detection.mappings.get(shown, {})
        dropdowns = [gr.update(visible=field in fields, choices=["", *detection.columns], value=mapping.get(field, ""),
                               label=f"{field}: {fields.get(field, '')}") for field in FIELDS]
        options = Options(None if chosen == AUTO else chosen,
                          {f: mapping.get(f) or "" for f in fields} if use_mapping else {},
                          system or "", Rules(int(min_chars or 0), bool(require_system)))
        described = _detection_text(detection, shown, chosen != AUTO)
        try:
            found = inspect(file, options, keep_rows=SAMPLE_ROWS,
                            progress=lambda done, total: progress(done / max(total, 1), desc="Reading"))
        except DataError as e:
            return (described, f"**Not ready yet.** {e}", *dropdowns, None, gr.update())
        return (described, _report_text(found), *dropdowns, found, Path(file).stem.replace(" ", "-")[:64])

    analysis_outputs = [detected, report, *columns, found, name]
    detected_mapping = [path, fmt, system, min_chars, require_system, gr.State(False), *columns]
    chosen_mapping = [path, fmt, system, min_chars, require_system, gr.State(True), *columns]

    @friendly
    def show_example(found, which, model, template, fallback, max_len):
        if found is None or not found.samples:
            return "", None, gr.update(visible=False)
        index = min(int(which or 1), len(found.samples)) - 1
        sample = found.samples[index]
        tokenizer = _tokenizer(ctx, model, template, fallback)
        p = preview(sample.row, tokenizer, int(max_len or 2048))
        return (_preview_html(p, found.report.unit, sample.number), sample.record or sample.row,
                gr.update(visible=len(found.samples) > 1, maximum=max(len(found.samples), 2), value=index + 1))

    @friendly
    def show_stats(found, model, template, fallback, max_len, progress=gr.Progress()):
        if found is None or not found.rows:
            return None, "", gr.update(visible=False)
        progress(0, desc="Counting tokens")
        path = str(resolve_model(model, ctx.workspace))
        s = statistics(found.rows, shared_tokenizer(path, template, fallback), int(max_len or 2048),
                       total=found.report.rows_kept)
        bins = s.histogram()
        labels = [f"{b['start']}–{b['end']}" if b["end"] > b["start"] else str(b["start"]) for b in bins]
        plot = gr.BarPlot(pd.DataFrame({"tokens": labels, "examples": [b["examples"] for b in bins]}), sort=labels)
        return plot, _stats_text(s), gr.update(visible=template == "model" and not has_own_template(path))

    preview_inputs = [found, which, model, template, fallback, max_len]
    stats_inputs = [found, model, template, fallback, max_len]
    preview_outputs = [rendered, raw, which]
    stats_outputs = [histogram, stats, fallback]

    def then_preview(event):
        return (event.then(show_example, preview_inputs, preview_outputs, api_visibility="private")
                .then(show_stats, stats_inputs, stats_outputs, api_visibility="private"))

    def choose_example(choice):  # a new file is detected afresh
        return (str(EXAMPLE_FILES[choice]) if choice in EXAMPLE_FILES else None), AUTO

    then_preview(upload.change(lambda f: (f, AUTO), upload, [path, fmt], api_visibility="private")
                 .then(analyse, detected_mapping, analysis_outputs, api_visibility="private"))
    then_preview(example.input(choose_example, example, [path, fmt], api_visibility="private")
                 .then(analyse, detected_mapping, analysis_outputs, api_visibility="private"))
    then_preview(fmt.input(analyse, detected_mapping, analysis_outputs, api_visibility="private"))
    then_preview(apply.click(analyse, chosen_mapping, analysis_outputs, api_visibility="private"))
    which.release(show_example, preview_inputs, preview_outputs, api_visibility="private")
    for listener in (model.submit, template.input, fallback.input, max_len.submit):
        (listener(show_example, preview_inputs, preview_outputs, api_visibility="private")
         .then(show_stats, stats_inputs, stats_outputs, api_visibility="private"))

    @friendly
    def do_save(file, found, name, overwrite, template, fallback, progress=gr.Progress()):
        if found is None or not file:
            raise gr.Error("Upload a file (or pick an example) and check its report first.")
        fields = RECORD_FORMATS[found.format].fields
        options = Options(found.format, {f: found.mapping.get(f, "") for f in fields}, found.options.system_prompt,
                          found.options.rules)
        target, done = import_file(ctx.workspace, name, file, options, template=template, fallback=fallback,
                                   overwrite=bool(overwrite),
                                   progress=lambda d, t: progress(d / max(t, 1), desc="Saving"))
        return (f"Saved **{done.report.rows_kept}** rows as **{target.name}** (`{target}`). "
                "Choose it on the Train tab.", _saved(ctx))

    save.click(do_save, [path, found, name, overwrite, template, fallback], [saved_note, saved], api_visibility="private")


def _model_spec(ctx: Context) -> str:
    loaded = ctx.manager.loaded
    return loaded.spec if loaded else "default"


def _tokenizer(ctx: Context, model: str, template: str, fallback: str):
    return shared_tokenizer(str(resolve_model(model, ctx.workspace)), template, fallback)


def _blank() -> tuple:
    return ("Upload a file to begin.", "", *_hidden(), None, gr.update())


def _hidden() -> list:
    return [gr.update(visible=False) for _ in FIELDS]


def _detection_text(detection, shown: str | None, chosen: bool) -> str:
    if chosen:
        head = f"**Format:** {shown} — {RECORD_FORMATS[shown].title} (your choice; detected: {detection.format or 'unknown'})"
    elif detection.format:
        head = (f"**Detected:** {detection.format} — {RECORD_FORMATS[detection.format].title} "
                f"(confidence {detection.confidence:.0%})")
    else:
        head = "**Detected:** no known shape. Choose a format below and map your columns."
    lines = [head, *[f"- {e}" for e in detection.evidence]]
    lines.append(f"\n**Columns:** {', '.join(f'`{c}`' for c in detection.columns) or 'none'}")
    return "\n".join(lines)


def _report_text(found) -> str:
    r = found.report
    lines = [f"**{r.rows_in} in · {r.rows_kept} kept · {r.rows_in - r.rows_kept} dropped** "
             f"({found.source.kind}, {found.source.encoding or 'binary'})"]
    if r.dropped:
        lines += ["", "| reason | count | " + r.unit + "s |", "| --- | --- | --- |"]
        for reason, count in r.dropped.most_common():
            numbers = r.dropped_rows[reason]
            lines.append(f"| {REASONS[reason]} | {count} | {', '.join(map(str, numbers[:15]))}"
                         f"{' …' if count > 15 else ''} |")
    if r.errors:
        lines += ["", "**Problems found:**", *[f"- {html.escape(e['message'])}" for e in r.errors[:10]]]
        if len(r.errors) > 10:
            lines.append(f"- … and {len(r.errors) - 10} more")
    lines += [f"\n_{note}_" for note in r.notes]
    if not r.rows_kept:
        lines.append("\n**Nothing can be trained on yet:** check the format and the column mapping above.")
    return "\n".join(lines)


def _preview_html(p, unit: str, number: int) -> str:
    parts = "".join(
        f'<span class="{"trained" if trained else "masked"}" style="{TRAINED if trained else MASKED}">{html.escape(piece)}</span>'
        for piece, trained in p.segments
    )
    notes = [f"From {unit} {number}: {p.tokens} tokens, {p.trained} trained "
             f"(<span style=\"{TRAINED}\">highlighted</span>; the rest is context the model reads but is not taught)."]
    if p.truncated:
        notes.append(f"<b>Longer than {p.max_seq_length} tokens:</b> training cuts it there.")
    if not p.ends_with_eos:
        notes.append("<b>The last reply does not end with the end-of-sequence token:</b> the model may not learn to stop.")
    return (f"<p>{' '.join(notes)}</p><pre style=\"white-space:pre-wrap;word-break:break-word;font-size:13px;"
            f"line-height:1.5;padding:10px;border:1px solid #e5e7eb;border-radius:6px\">{parts}</pre>")


def _stats_text(s) -> str:
    share = s.trained_tokens / s.tokens_per_epoch if s.tokens_per_epoch else 0
    lines = [
        f"- **Examples:** {s.rows:,}" + (f" (measured on a sample of {s.measured:,})" if s.sampled else ""),
        f"- **Tokens:** {s.total_tokens:,} in all; **{s.tokens_per_epoch:,} per epoch** at max length {s.max_seq_length}",
        f"- **Trained tokens:** {s.trained_tokens:,} per epoch ({share:.0%})",
        f"- **Cut at max length:** {s.truncated_share:.1%} of examples",
        f"- **Longest:** {max(s.lengths):,} tokens · **shortest:** {min(s.lengths):,}",
    ]
    if s.turns_max:
        lines.append(f"- **Turns per conversation:** {s.turns_min}–{s.turns_max} (mean {s.turns_mean})")
    if s.nothing_trained:
        lines.append(f"- **{s.nothing_trained:,} examples train nothing** at this max length (their replies come "
                     "after the cut); raise it, or they are left out.")
    if s.no_eos:
        lines.append(f"- **{s.no_eos:,} examples do not end with the end-of-sequence token.**")
    return "\n".join(lines)


def _saved(ctx: Context) -> pd.DataFrame:
    rows = [saved.row() for saved in list_datasets(ctx.workspace)]
    return pd.DataFrame(rows, columns=["name", "format", "rows", "from", "template", "created"])
