"""Export tab: pick a run and formats, export with a progress bar, read each export's verification,
and push a finished export to the Hugging Face Hub."""

from __future__ import annotations

import gradio as gr

from engine.export.catalog import EXPORT_FORMATS as FORMATS
from engine.export.exporter import export, list_exports
from engine.export.hub import push
from engine.export.source import exportable_runs
from engine.chat.sampling import load_presets
from ui.context import Context
from ui.errors import friendly

def _formats_help() -> str:
    return "\n".join(f"- **{f.label}** (`{f.name}`): {f.help}"
                     + (f" Answers must reach {f.floor:.0%} argmax agreement." if f.floor else
                        " Answers must be identical to the in-app model's." if f.name != "modelfile" else "")
                     for f in FORMATS.values())


def _exports_table(ctx: Context, run: str | None) -> str:
    rows = list_exports(ctx.workspace, run) if run else []
    if not rows:
        return "No exports of this run yet." if run else "No run chosen."
    lines = ["| format | verification | greedy answers | argmax agreement | folder |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        answers = "identical" if r["identical"] else (
            f"differ from token {r['first_difference'] + 1}" if r["first_difference"] is not None else "—")
        agreement = f"{r['argmax_agreement']:.1%}" if r["argmax_agreement"] is not None else "—"
        lines.append(f"| {r['format']} | {'passed' if r['passed'] else '**FAILED**'} | {answers} | {agreement} | "
                     f"`{r['path']}` |")
    return "\n".join(lines)


def _folders(ctx: Context, run: str | None) -> list[str]:
    return [r["path"] for r in list_exports(ctx.workspace, run)] if run else []


def render(ctx: Context) -> None:
    gr.Markdown(
        "Take the trained model home. Every export is loaded back and its greedy answers compared with the "
        "model you chatted with (base + adapter) before it is called done; its chat template is checked too."
    )
    runs = exportable_runs(ctx.workspace)
    with gr.Row():
        run = gr.Dropdown(runs, value=runs[0] if runs else None, label="Run", allow_custom_value=True,
                          info="Runs that have an adapter (Refresh after a run finishes)")
        refresh = gr.Button("Refresh", scale=0)
    with gr.Row():
        with gr.Column(scale=3):
            formats = gr.CheckboxGroup([(f.label, f.name) for f in FORMATS.values()], value=["adapter"],
                                       label="Formats")
            with gr.Accordion("What each format is", open=False):
                gr.Markdown(_formats_help())
        with gr.Column(scale=2):
            preset = gr.Dropdown(list(load_presets()), value="Leaderboard", label="Sampling preset",
                                 info="Goes into merged16's generation config and the Modelfile's PARAMETER lines")
            system = gr.Textbox(label="System prompt for the Modelfile (optional)", lines=3,
                                info="Ollama uses it when a chat has no system prompt of its own")
            card = gr.File(label="…or a character card (.json or .png)", file_types=[".json", ".png"], type="filepath")
    go = gr.Button("Export and verify", variant="primary")
    report = gr.Code(label="Verification", language=None, lines=16, interactive=False)
    table = gr.Markdown(_exports_table(ctx, runs[0] if runs else None))

    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            folder = gr.Dropdown(_folders(ctx, runs[0] if runs else None), label="Export to push")
            repo = gr.Textbox(label="Repository", placeholder="your-name/model-name")
        with gr.Row():
            token = gr.Textbox(label="Token (write access)", type="password",
                               placeholder="leave empty to use the HF_TOKEN environment variable")
            private = gr.Checkbox(True, label="Private repository")
        push_button = gr.Button("Push")
        pushed = gr.Markdown()

    @friendly
    def do_export(run, formats, preset, system, card, progress=gr.Progress()):
        if not run:
            raise gr.Error("Choose a run first (runs appear here once training has saved an adapter).")
        if not formats:
            raise gr.Error("Tick at least one format.")
        if card:
            from engine.data.cards import read_card

            system = read_card(card).system_prompt()
        texts = []
        ordered = [f for f in FORMATS if f in formats]  # GGUF before the Modelfile that goes beside it
        for i, fmt in enumerate(ordered):
            def step(fraction, message, i=i, fmt=fmt):
                progress((i + fraction) / len(ordered), desc=f"{fmt}: {message}")
            result = export(ctx.workspace, run, fmt, preset=preset, system=(system or "").strip(), progress=step)
            texts.append(result.summary())
        return "\n\n".join(texts), _exports_table(ctx, run), gr.update(choices=_folders(ctx, run))

    @friendly
    def do_push(folder, repo, token, private, progress=gr.Progress()):
        if not folder:
            raise gr.Error("Choose an export to push (export one first).")
        url = push(folder, repo, token=token or None, private=bool(private),
                   progress=lambda f, m: progress(f, desc=m))
        return f"Pushed to {url} ({'private' if private else 'public'})."

    def show(run):
        return _exports_table(ctx, run), gr.update(choices=_folders(ctx, run), value=None)

    def reload_runs():
        names = exportable_runs(ctx.workspace)
        return gr.update(choices=names, value=names[0] if names else None)

    go.click(do_export, [run, formats, preset, system, card], [report, table, folder], api_name="export")
    push_button.click(do_push, [folder, repo, token, private], pushed, api_visibility="private")
    run.change(show, run, [table, folder], api_visibility="private")
    refresh.click(reload_runs, None, run, api_visibility="private")
