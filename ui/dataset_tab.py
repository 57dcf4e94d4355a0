"""Dataset tab: bring a file, see what was detected (and override it), map columns to roles, read
the report of what was kept and dropped, page through every example rendered exactly as training
renders it (trained tokens highlighted) beside the raw record, see the token-length histogram, and save.
The handlers are plain functions of the context; what they show is drawn by ui.dataset_view."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import gradio as gr

from engine.data import RECORD_FORMATS, DataError, Options, Rules, inspect
from engine.data.pipeline import peek
from engine.data.render import has_own_template, preview, shared_tokenizer
from engine.data.stats import statistics
from engine.data.store import import_file
from engine.chat.models import resolve_model
from engine.chat.templates import FALLBACKS
from engine.train.config import TEMPLATE_CHOICES
from ui import dataset_view as view
from engine.i18n import tr
from ui.access import visitor_ok
from ui.context import Context
from ui.errors import said
from ui.i18n import _, t
from ui.widgets import bind, follow, template_choices

AUTO = "auto (detected)"
FIELDS = ["instruction", "input", "output", "prompt", "response", "messages", "conversations", "text", "history",
          "system", "tools"]  # every field of RECORD_FORMATS, the main ones first
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = {p.name: p for p in sorted([*(EXAMPLES / "data").glob("*.json*"), *(EXAMPLES / "cards").glob("*")])}
FILE_TYPES = [".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt", ".md", ".png"]
SAMPLE_ROWS = 5000  # rows kept in memory for the statistics and the preview; saving streams the whole file
NO_FILE = "Upload a file (or pick an example) first."


# ---- handlers ------------------------------------------------------------------------------------

def analyse(ctx: Context, file, chosen, system, min_chars, require_system, keep_duplicates, text_only, all_branches,
            card_user, use_mapping, progress=gr.Progress(), *mapped) -> tuple:
    """Detect, convert and check `file`: the detection, the report, the column dropdowns, the inspection,
    a name for it, the Save button with the reason it is off, and the preview back at the first example."""
    if not file:
        return (t("Upload a file to begin."), "", *_hidden(), None, gr.update(), *save_state(file, None), 1)
    try:
        detection = peek(file)
    except DataError as e:
        return ("", t("**This file can't be used.** {problem}", problem=said(e)), *_hidden(), None, gr.update(), *save_state(file, None), 1)
    shown = chosen if chosen != AUTO else detection.format
    fields = RECORD_FORMATS[shown].fields if shown else {}
    mapping = dict(zip(FIELDS, mapped)) if use_mapping else detection.mappings.get(shown, {})
    dropdowns = [gr.update(visible=field in fields, choices=["", *detection.columns], value=mapping.get(field, ""),
                           label=t("{field}: {meaning}", field=field, meaning=tr(fields.get(field, "")))) for field in FIELDS]
    options = Options(None if chosen == AUTO else chosen,
                      {f: mapping.get(f) or "" for f in fields} if use_mapping else {},
                      system or "", Rules(int(min_chars or 0), bool(require_system)),
                      card_user=(card_user or "").strip() or "User", text_only=bool(text_only),
                      keep_duplicates=bool(keep_duplicates), all_branches=bool(all_branches))
    try:
        found = inspect(file, options, keep_rows=SAMPLE_ROWS, samples=SAMPLE_ROWS,
                        progress=lambda done, total: progress(done / max(total, 1), desc=t("Reading")))
    except DataError as e:
        described = view.detection_text(detection, shown, chosen != AUTO)
        return (described, t("**Not ready yet.** {problem}", problem=said(e)), *dropdowns, None, gr.update(), *save_state(file, None), 1)
    described = view.detection_text(detection, shown, chosen != AUTO, found.source)
    return (described, view.report_text(found), *dropdowns, found, Path(file).stem.replace(" ", "-")[:64],
            *save_state(file, found), 1)


def why_not_save(file, found) -> str | None:
    """Why `found` cannot be saved from `file`, or None when it can."""
    if not file:
        return t(NO_FILE)
    if found is None:
        return t("Nothing to save: this file can't be used as it is (the report above says why).")
    if Path(found.source.path).resolve() != Path(file).resolve():
        return t("The report is still being made for the new file; Save when it is shown.")
    if not found.report.rows_kept:
        return t("Nothing to save: no example of this file can be trained on (the report above says why).")
    return None


def save_state(file, found) -> tuple:
    """The Save button, clickable only for a file that can be saved, and the reason beside it when not."""
    reason = why_not_save(file, found)
    return gr.Button(interactive=reason is None), reason or ""


def save(ctx: Context, file, found, name, overwrite, template, fallback, progress=gr.Progress()) -> str:
    """Save the file as a data set; the outcome, or why nothing was saved, as the line beside Save."""
    reason = why_not_save(file, found)
    if reason:
        return t("**Not saved.** {reason}", reason=reason)
    fields = RECORD_FORMATS[found.format].fields
    options = dataclasses.replace(found.options, format=found.format,
                                  mapping={f: found.mapping.get(f, "") for f in fields})
    try:
        target, done = import_file(ctx.workspace, name, file, options, template=template, fallback=fallback,
                                   overwrite=bool(overwrite),
                                   progress=lambda d, total: progress(d / max(total, 1), desc=t("Saving")))
    except DataError as e:
        return t("**Not saved.** {reason}", reason=view.literal(said(e)))
    return t("Saved **{rows}** rows as **{name}** (`{path}`). Choose it on the Train tab.",
             rows=done.report.rows_kept, name=target.name, path=str(target))


def saved_list(ctx: Context):
    return view.saved_frame(ctx.workspace)


def show_example(ctx: Context, found, which, model, template, fallback, max_len) -> tuple:
    """The examples shown or not; example `which` rendered for training, its raw record, the slider, and
    the page of examples around it. A model that cannot render it leaves the rest and says why."""
    if found is None or not found.samples:
        return gr.Column(visible=False), "", None, gr.update(visible=False), None, ""
    count = len(found.samples)
    index = min(max(int(which or 1), 1), count) - 1
    sample = found.samples[index]
    try:
        p = preview(sample.row, _tokenizer(ctx, model, template, fallback), int(max_len or 2048))
        html = view.preview_html(p, found.report.unit, sample.number, f"{index + 1:,} of {count:,}")
    except ValueError as e:  # the model's sentence: not found, not a model, no network
        html = view.not_rendered(model, e)
    page, caption = view.example_page(found, index)
    slider = gr.update(visible=count > 1, maximum=max(count, 2), value=index + 1)
    return gr.Column(visible=True), html, sample.record or sample.row, slider, page, caption


def turn_page(found, which, step: int) -> int:
    """The first example of the page `step` pages from the one that holds `which`."""
    if found is None or not found.samples:
        return 1
    last = (len(found.samples) - 1) // view.PAGE
    page = min(max((int(which or 1) - 1) // view.PAGE + step, 0), last)
    return page * view.PAGE + 1


def pick_example(evt: gr.SelectData) -> int:
    return int(evt.row_value[0])


def show_stats(ctx: Context, found, model, template, fallback, max_len, progress=gr.Progress()) -> tuple:
    """The token-length histogram, the statistics, and the fallback choice for a model without a template."""
    if found is None or not found.rows:
        return gr.BarPlot(None, visible=False), "", gr.update(visible=False)
    progress(0, desc=t("Counting tokens"))
    try:
        path = str(resolve_model(model, ctx.workspace))
        tokenizer = shared_tokenizer(path, template, fallback)
    except ValueError as e:
        return gr.BarPlot(None, visible=False), view.not_rendered(model, e, "counted"), gr.update()
    s = statistics(found.rows, tokenizer, int(max_len or 2048), total=found.report.rows_kept)
    frame, labels = view.histogram_frame(s)
    return (gr.BarPlot(frame, sort=labels, visible=True), view.stats_text(s),
            gr.update(visible=template == "model" and not has_own_template(path)))


def format_choices(lang: str | None = None) -> list[tuple[str, str]]:
    """The Format list in `lang` (default: the caller's): each shape's title as its label, its id the value
    the handlers get. Drawn on the server, on page load and language switch: a `_()` label in a dropdown's
    choices left the box empty in the browser."""
    return [(tr(AUTO, lang), AUTO), *((tr(f.title, lang), name) for name, f in RECORD_FORMATS.items())]


def format_list(current, lang: str | None = None) -> tuple:
    """The Format list relabelled, and its choice to set again after: the browser resets a dropdown whose
    choices change to their first."""
    return gr.update(choices=format_choices(lang)), current


def keep_format(chosen):
    return gr.update(value=chosen)


def choose_file(file) -> tuple:
    """The uploaded file (or none) as the file to read, detected afresh; the example choice let go, so the
    page shows one source."""
    return file, AUTO, None


def choose_example(choice) -> tuple:
    """A file of examples/ as the file to read, detected afresh; the uploaded file let go."""
    return (str(EXAMPLE_FILES[choice]) if choice in EXAMPLE_FILES else None), AUTO, None


# ---- the tab -------------------------------------------------------------------------------------

def render(ctx: Context) -> None:
    gr.Markdown(_(
        "Bring the examples the model should learn from: JSON, JSONL, CSV/TSV, Parquet, plain text, or a character "
        "card (JSON or PNG). The shape is detected; everything becomes conversations, and the preview shows the "
        "exact text training sees, with the tokens the model learns to write **highlighted**."
    ))
    path = gr.State(None)
    found = gr.State(None)  # the Inspection shown
    with gr.Row():
        with gr.Column(scale=2):
            upload = gr.File(label=_("Data file (drag and drop)"), file_types=FILE_TYPES, type="filepath", elem_id="data-file")
            example = gr.Dropdown(list(EXAMPLE_FILES), value=None, label=_("…or try an example"), elem_id="data-example")
        with gr.Column(scale=3):
            detected = gr.Markdown(_("Upload a file to begin."), elem_id="data-detected")
    with gr.Accordion(_("Format, columns and rules"), open=True):
        with gr.Row():
            fmt = gr.Dropdown(format_choices(), value=AUTO, label=_("Format"), elem_id="data-format",
                              info=_("Leave on auto, or choose the shape of your records."))
            system = gr.Textbox(label=_("System prompt"), placeholder=_("Added to every conversation that has none"),
                                info=_("e.g. You are Captain Bess, a pirate who ends every reply with 'Arr, matey!'"))
        with gr.Row():
            columns = [gr.Dropdown([], label=field, visible=False, allow_custom_value=False, elem_id=f"map-{field}")
                       for field in FIELDS]
        with gr.Row():
            min_chars = gr.Number(Rules.min_chars, precision=0, minimum=0, label=_("Minimum length (characters)"),
                                  info=_("Shorter conversations are dropped."))
            require_system = gr.Checkbox(False, label=_("Require a system turn"), info=_("Drop conversations without one."))
            apply = gr.Button(_("Apply"), elem_id="data-apply")
        with gr.Row():
            keep_duplicates = gr.Checkbox(False, label=_("Keep exact duplicates"),
                                          info=_("Off: a conversation seen before is dropped (the first copy stays)."))
            text_only = gr.Checkbox(False, label=_("Use the text-only rows"),
                                    info=_("For a file with images: this app trains text models."))
            all_branches = gr.Checkbox(False, label=_("Every branch of a message tree"),
                                       info=_("Off: only the top-ranked reply path of each tree."))
            card_user = gr.Textbox("User", label=_("Your name in a card's dialogues"),
                                   info=_("The name that takes the place of the user placeholder in a character card's example dialogues."))
    report = gr.Markdown(elem_id="data-report")

    gr.Markdown(_("### Preview: what training sees"))
    with gr.Row():
        model = gr.Textbox(_model_spec(ctx), label=_("Render for model"), info=_("'default', a folder, or a Hub id"))
        template = gr.Radio(template_choices(TEMPLATE_CHOICES), value="model", label=_("Chat template"))
        fallback = gr.Radio(template_choices(FALLBACKS), value="chatml", visible=False,
                            label=_("This model has no chat template: render with"))
        max_len = gr.Number(2048, precision=0, minimum=16, label=_("Max sequence length"),
                            info=_("Longer examples are cut here during training."))
    with gr.Column(visible=False) as examples:  # shown once a file has examples
        page = gr.Dataframe(None, interactive=False, max_height=420, column_widths=["10%", "10%", "10%", "70%"],
                            label=_("Examples"), elem_id="data-examples")
        with gr.Row():
            earlier = gr.Button(_("◀ Previous page"), size="sm", elem_id="data-earlier")
            caption = gr.Markdown(elem_id="data-page")
            later = gr.Button(_("Next page ▶"), size="sm", elem_id="data-later")
        with gr.Row():
            with gr.Column(scale=3):
                which = gr.Slider(1, 5, 1, step=1, label=_("Example"), elem_id="data-which")
                rendered = gr.HTML(elem_id="data-rendered")
            with gr.Column(scale=2):
                raw = gr.JSON(label=_("The record in your file"))
    with gr.Row():
        histogram = gr.BarPlot(None, x="tokens", y="examples", title="Tokens per example", x_title="tokens",
                               y_title="examples", y_lim=[0, None], x_label_angle=-45, height=300, visible=False,
                               elem_id="data-histogram")
        stats = gr.Markdown(elem_id="data-stats")

    gr.Markdown(_("### Save"))
    with gr.Row():
        name = gr.Textbox(label=_("Name"), placeholder=_("e.g. pirate-v1"), elem_id="data-name")
        overwrite = gr.Checkbox(False, label=_("Replace a data set of this name"))
        with gr.Column():
            save_button = gr.Button(_("Save"), variant="primary", interactive=False, elem_id="data-save")
            save_note = gr.Markdown(_(NO_FILE), elem_id="data-saved")
    saved = gr.Dataframe(view.saved_frame(ctx.workspace), label=_("Saved data sets"), interactive=False,
                         elem_id="data-saved-list")
    follow(ctx, bind(saved_list, ctx), None, saved)

    analysis_outputs = [detected, report, *columns, found, name, save_button, save_note, which]
    choices = [keep_duplicates, text_only, all_branches, card_user]
    detected_mapping = [path, fmt, system, min_chars, require_system, *choices, gr.State(False), *columns]
    chosen_mapping = [path, fmt, system, min_chars, require_system, *choices, gr.State(True), *columns]
    preview_inputs = [found, which, model, template, fallback, max_len]
    stats_inputs = [found, model, template, fallback, max_len]
    preview_outputs = [examples, rendered, raw, which, page, caption]
    stats_outputs = [histogram, stats, fallback]
    private = {"api_visibility": "private"}
    kept = gr.State(AUTO)
    for relabel in (gr.on([ctx.demo.load, ctx.tab.select], visitor_ok(format_list), fmt, [fmt, kept], **private),
                    ctx.language.change(visitor_ok(format_list), [fmt, ctx.language], [fmt, kept], **private)):
        relabel.then(visitor_ok(keep_format), kept, fmt, **private)

    def then_preview(event):
        return (event.then(bind(show_example, ctx), preview_inputs, preview_outputs, **private)
                .then(bind(show_stats, ctx), stats_inputs, stats_outputs, **private))

    def then_analyse(event):
        then_preview(event.then(bind(analyse, ctx), detected_mapping, analysis_outputs, **private))

    then_analyse(gr.on([upload.upload, upload.clear], choose_file, upload, [path, fmt, example], **private))
    then_analyse(example.input(choose_example, example, [path, fmt, upload], **private))
    then_preview(fmt.input(bind(analyse, ctx), detected_mapping, analysis_outputs, **private))
    then_preview(apply.click(bind(analyse, ctx), chosen_mapping, analysis_outputs, **private))
    which.release(bind(show_example, ctx), preview_inputs, preview_outputs, **private)
    for button, step in ((earlier, -1), (later, 1)):
        (button.click(lambda f, w, step=step: turn_page(f, w, step), [found, which], which, **private)
         .then(bind(show_example, ctx), preview_inputs, preview_outputs, **private))
    (page.select(pick_example, None, which, **private)
     .then(bind(show_example, ctx), preview_inputs, preview_outputs, **private))
    for listener in (model.submit, template.input, fallback.input, max_len.submit):
        (listener(bind(show_example, ctx), preview_inputs, preview_outputs, **private)
         .then(bind(show_stats, ctx), stats_inputs, stats_outputs, **private))
    # The outcome goes beside the button; the list is re-read from the workspace after, so a failed save
    # leaves it as it was.
    (save_button.click(bind(save, ctx), [path, found, name, overwrite, template, fallback], save_note, **private)
     .then(bind(saved_list, ctx), None, saved, **private))


def _model_spec(ctx: Context) -> str:
    loaded = ctx.manager.loaded
    return loaded.spec if loaded else "default"


def _tokenizer(ctx: Context, model: str, template: str, fallback: str):
    return shared_tokenizer(str(resolve_model(model, ctx.workspace)), template, fallback)


def _hidden() -> list:
    return [gr.update(visible=False) for _field in FIELDS]
