"""Export tab: pick a run and formats, export with a progress bar, read each export's verification,
download it (a GGUF file as it is, a folder as a zip) with the steps to run it, and push it to the Hub."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.access import OWNER, current_role
from engine.chat.sampling import load_presets
from engine.export import download
from engine.export.catalog import EXPORT_FORMATS as FORMATS
from engine.export.exporter import export, list_exports
from engine.export.hub import push
from engine.export.readiness import unavailable, why_not
from engine.export.source import exportable_runs, open_source
from ui.access import visitor_ok
from ui.context import Context
from engine.i18n import tr
from ui.errors import said
from ui.i18n import _, t
from ui.widgets import bind, follow, keep_choice

def _serve(ctx: Context, paths: list[Path]) -> list[str]:
    """Downloads served from a folder of hard links with a random name (engine.export.download.offer):
    a GGUF of several GiB is not copied, and a path that is not handed out cannot be fetched."""
    if not paths:
        return []
    folder = download.offer(ctx.workspace, paths)
    gr.set_static_paths([folder])
    return [str(folder / p.name) for p in paths]


def _formats_help() -> str:
    def rule(f):
        if f.floor:
            return " " + t("Verified when it picks the in-app model's next token at least {floor} of the time.",
                           floor=f"{f.floor:.0%}")
        return "" if f.name == "modelfile" else " " + t("Verified when its answers are identical to the in-app model's.")
    return "\n".join(f"- **{tr(f.label)}** (`{f.name}`): {tr(f.help)}{rule(f)}" for f in FORMATS.values())


def _size(folder: Path) -> str:
    size = sum(p.stat().st_size for p in download.files_of(folder))
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def _answers(r: dict) -> str:
    if r["identical"]:
        return t("identical")
    if r["first_difference"] is None:
        return "—"
    if r["passed"]:
        return t("the same for the first {count} tokens, then a difference its format allows", count=r["first_difference"])
    return t("the same for the first {count} tokens, then different", count=r["first_difference"])


def _exports_table(ctx: Context, run: str | None) -> str:
    rows = list_exports(ctx.workspace, run) if run else []
    if not rows:
        return t("No exports of this run yet.") if run else t("No run chosen.")
    lines = [t("| format | verification | answers | picks the same next token | size |"), "| --- | --- | --- | --- | --- |"]
    for r in rows:
        floor = FORMATS[r["format"]].floor if r["format"] in FORMATS else None
        agreement = "—" if r["argmax_agreement"] is None else f"{r['argmax_agreement']:.1%}" + (
            " " + t("({floor} needed)", floor=f"{floor:.0%}") if floor else "")
        verdict = t("passed") if r["passed"] else t("**FAILED**")
        lines.append(f"| {r['format']} | {verdict} | {_answers(r)} | {agreement} | {_size(Path(r['path']))} |")
    return "\n".join(lines)


def _label(fmt: str) -> str:
    return tr(FORMATS[fmt].label) if fmt in FORMATS else fmt


def _finished(ctx: Context, run: str | None) -> list[dict]:
    return list_exports(ctx.workspace, run) if run else []


def _format_choices(ctx: Context, run: str | None, ticked: list[str]) -> tuple[dict, dict]:
    """The formats this machine can export for the run, and beside them the others, greyed out, with why:
    keyword arguments for the two CheckboxGroups."""
    blocked = unavailable(ctx.hardware, [r["format"] for r in _finished(ctx, run)])
    reasons = "  \n".join(f"**{tr(FORMATS[name].label)}**: {tr(reason)}" for name, reason in blocked.items())
    return ({"choices": [(tr(f.label), f.name) for f in FORMATS.values() if f.name not in blocked],
             "value": [name for name in ticked or [] if name in FORMATS and name not in blocked]},
            {"choices": [(tr(FORMATS[n].label), n) for n in blocked], "value": [], "info": reasons, "visible": bool(blocked)})


def _format_boxes(ctx: Context, run: str | None, ticked: list[str]) -> tuple[gr.CheckboxGroup, gr.CheckboxGroup]:
    ready, blocked = _format_choices(ctx, run, ticked)
    return gr.CheckboxGroup(**ready), gr.CheckboxGroup(**blocked)


def _download_choice(ctx: Context, run: str | None, current: str | None) -> gr.Dropdown:
    rows = sorted(_finished(ctx, run), key=lambda r: (Path(r["path"]) / "verification.json").stat().st_mtime,
                  reverse=True)
    choices = [(f"{tr(FORMATS[r['format']].label)} ({_size(Path(r['path']))})", r["format"]) for r in rows
               if r["format"] in FORMATS]
    return keep_choice(choices, current)


# ---- handlers (plain functions of the context, bound with ui.widgets.bind) ---------------------

def refresh_runs(ctx: Context, current: str | None) -> gr.Dropdown:
    """The runs that have an adapter, keeping the person's choice; with none yet, the newest."""
    return keep_choice(exportable_runs(ctx.workspace), current)


def refresh(ctx: Context, current: str | None, ticked: list[str], chosen: str | None):
    """On page load and tab select: the run list, and the chosen run's exports (some may have been made
    with the command line since)."""
    runs = refresh_runs(ctx, current)
    return runs, *show_run(ctx, runs.constructor_args["value"], ticked, chosen)


@visitor_ok
def show_run(ctx: Context, run: str | None, ticked: list[str], chosen: str | None):
    """Everything that depends on the chosen run: the formats it can take, its exports and downloads."""
    folders = [r["path"] for r in _finished(ctx, run)]
    return (*_format_boxes(ctx, run, ticked), _exports_table(ctx, run), gr.Dropdown(choices=folders, value=None),
            _download_choice(ctx, run, chosen))


def do_export(ctx: Context, run: str | None, formats: list[str], preset: str, system: str, card,
              progress=gr.Progress()):
    """Export and verify each ticked format. A refusal is said beside the button; the report and the
    exports already on screen stay."""
    keep = (gr.skip(),) * 8
    if not run:
        return t("Choose a run first: runs appear here once training has saved an adapter."), *keep
    if not formats:
        return t("Tick at least one format."), *keep
    finished = [r["format"] for r in _finished(ctx, run)] + list(formats)
    refused = {f: why_not(f, ctx.hardware, finished) for f in formats}
    refused = {f: reason for f, reason in refused.items() if reason}
    if refused:
        return t("**Nothing was exported.** {reasons}",
                 reasons=" ".join(f"{_label(f)}: {tr(r)}" for f, r in refused.items())), *keep
    texts, done, message = [], [], ""
    ordered = [f for f in FORMATS if f in formats]  # GGUF before the Modelfile that goes beside it
    try:
        if card:
            from engine.data.cards import read_card

            system = read_card(card).system_prompt()
        for i, fmt in enumerate(ordered):
            def step(fraction, text, i=i, fmt=fmt):
                progress((i + fraction) / len(ordered), desc=t("{format}: {step}", format=fmt, step=text))
            result = export(ctx.workspace, run, fmt, preset=preset, system=(system or "").strip(), progress=step)
            texts.append(tr(result.summary()))
            done.append((fmt, result.passed))
    except ValueError as e:  # the engine's refusals, written for people
        message = (t("**The rest was not exported.** {problem}", problem=said(e)) if done
                   else t("**Nothing was exported.** {reasons}", reasons=said(e)))
    verdicts = ", ".join(t("{format} passed", format=fmt) if ok
                         else t("{format} FAILED its verification (see the report)", format=fmt) for fmt, ok in done)
    if verdicts:
        message = t("Exported: {verdicts}. Its downloads are below.", verdicts=verdicts) + (f"  \n{message}" if message else "")
    last = next((fmt for fmt, _ in reversed(done) if fmt != "modelfile"), None)
    choice = _download_choice(ctx, run, last)
    return (message, "\n\n".join(texts) if texts else gr.skip(), _exports_table(ctx, run),
            gr.Dropdown(choices=[r["path"] for r in _finished(ctx, run)]), choice, *_format_boxes(ctx, run, formats),
            *show_download(ctx, run, choice.constructor_args["value"]))


@visitor_ok
def show_download(ctx: Context, run: str | None, fmt: str | None):
    """The files that download as they are (a GGUF and its Modelfile) and the steps to use the export;
    only the owner's page offers them (a demo visitor sees the exports listed, nothing to take)."""
    if current_role() != OWNER:
        return None, t("Downloads are for the app's owner.")
    if not run or not fmt:
        return None, t("Finished exports of the run can be downloaded here.")
    direct = download.direct_files(ctx.workspace, run, fmt)
    zip_hint = "" if direct else t("Press **Make a .zip** to download the `{format}` folder.", format=fmt) + "\n\n"
    return _serve(ctx, direct) or None, zip_hint + tr(download.steps(run, fmt, open_source(ctx.workspace, run).base_spec))


def make_zip(ctx: Context, run: str | None, fmt: str | None, progress=gr.Progress()):
    if not run or not fmt:
        raise gr.Error(t("Choose a finished export to download (export one first)."))
    progress(0.1, desc=t("Zipping the {format} folder", format=fmt))
    files = [*download.direct_files(ctx.workspace, run, fmt), download.zip_export(ctx.workspace, run, fmt)]
    return _serve(ctx, files), tr(download.steps(run, fmt, open_source(ctx.workspace, run).base_spec))


def do_push(ctx: Context, folder: str | None, repo: str, token: str, private: bool, progress=gr.Progress()):
    if not folder:
        raise gr.Error(t("Choose an export to push (export one first)."))
    url = push(folder, repo, token=token or None, private=bool(private), progress=lambda f, m: progress(f, desc=m))
    return (t("Pushed to {url} (private).", url=url) if private else t("Pushed to {url} (public).", url=url)), ""  # the token is not kept in the page


# ---- layout -------------------------------------------------------------------------------------

def render(ctx: Context) -> None:
    gr.Markdown(_(
        "Take the trained model home. Every export is loaded back and its answers compared with the model you "
        "chatted with (base + adapter) before it is called done; its chat template is checked too."
    ))
    # Custom values: the `export` API takes any run name, and the engine says when there is no such run.
    runs = exportable_runs(ctx.workspace)  # as the app starts; `follow` below reads them again on every visit
    run = gr.Dropdown(runs, value=runs[0] if runs else None, label=_("Run"), elem_id="export-run",
                      info=_("Runs that have a saved adapter, newest first"), allow_custom_value=True)
    with gr.Row():
        with gr.Column(scale=3):
            ready, blocked = _format_choices(ctx, run.value, ["adapter"])
            formats = gr.CheckboxGroup(label=_("Formats"), elem_id="export-formats", **ready)
            unready = gr.CheckboxGroup(label=_("Not available here"), interactive=False, elem_id="export-unavailable",
                                       **blocked)
            with gr.Accordion(_("What each format is"), open=False):
                gr.Markdown(_formats_help())
        with gr.Column(scale=2):
            preset = gr.Dropdown(list(load_presets()), value="Leaderboard", label=_("Sampling preset"),
                                 info=_("Goes into merged16's generation config and the Modelfile's PARAMETER lines"))
            system = gr.Textbox(label=_("System prompt for the Modelfile (optional)"), lines=3,
                                info=_("Ollama uses it when a chat has no system prompt of its own"))
            card = gr.File(label=_("…or a character card (.json or .png)"), file_types=[".json", ".png"], type="filepath",
                           height=140)
    with gr.Row(equal_height=True):
        go = gr.Button(_("Export and verify"), variant="primary", scale=1, elem_id="export-go")
        message = gr.Markdown(elem_id="export-message")
    report = gr.Code(label=_("Verification"), language=None, lines=12, interactive=False, elem_id="export-report")
    table = gr.Markdown(_exports_table(ctx, run.value), elem_id="export-table")

    with gr.Accordion(_("Download"), open=True):
        with gr.Row(equal_height=True):
            chosen = gr.Dropdown([], label=_("Export to download"), elem_id="export-download-choice", scale=3,
                                 allow_custom_value=True)
            zip_button = gr.Button(_("Make a .zip"), elem_id="export-zip", scale=1)
        files = gr.File(label=_("Files to download"), file_count="multiple", interactive=False, elem_id="export-files")
        steps = gr.Markdown(elem_id="export-steps")

    with gr.Accordion(_("Push to the Hugging Face Hub"), open=False):
        with gr.Row():
            folder = gr.Dropdown([], label=_("Export to push"), elem_id="export-push-choice")
            repo = gr.Textbox(label=_("Repository"), placeholder=_("your-name/model-name"), elem_id="export-repo")
        with gr.Row():
            token = gr.Textbox(label=_("Token (write access)"), type="password", elem_id="export-token",
                               placeholder=_("leave empty to use the HF_TOKEN environment variable"))
            private = gr.Checkbox(True, label=_("Private repository"))
        push_button = gr.Button(_("Push"), elem_id="export-push")
        pushed = gr.Markdown(elem_id="export-pushed")

    follow(ctx, bind(refresh, ctx), [run, formats, chosen], [run, formats, unready, table, folder, chosen])
    run.change(bind(show_run, ctx), [run, formats, chosen], [formats, unready, table, folder, chosen],
               api_visibility="private")
    go.click(bind(do_export, ctx), [run, formats, preset, system, card],
             [message, report, table, folder, chosen, formats, unready, files, steps], api_name="export")
    chosen.change(bind(show_download, ctx), [run, chosen], [files, steps], api_visibility="private")
    zip_button.click(bind(make_zip, ctx), [run, chosen], [files, steps], api_name="export_zip")
    push_button.click(bind(do_push, ctx), [folder, repo, token, private], [pushed, token], api_visibility="private")

