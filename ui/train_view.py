"""What the Train tab shows of a run: its progress line, the verdict once it has ended with the buttons
to the next steps, the loss and learning-rate charts, the log, the probe answers, and the table of runs.
Read from the run folders through engine.train.runs."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from engine.hardware import GiB
from engine.train import plan, probes, runs, status, verdict
from engine.workspace import Workspace
from ui.access import visitor_ok
from engine.i18n import joined, tr
from ui.context import Context
from ui.i18n import _, t

LOG_LINES = 40
NEXT_STEPS = [("Compare with the base model", "compare"), ("Chat with it", "chat"), ("Export it", "export")]
GB = 1e9  # the unit of the events' memory_gb fields; the screen shows GiB like the header and the plan


def _duration(seconds) -> str:
    return plan.duration(seconds) if seconds is not None else "…"


def progress_text(run: runs.Run | None) -> str:
    if run is None:
        return t("No run yet: choose a model, a data set and a preset, look at the plan, then Start.")
    state = run.state
    lines = [f"### {run.name}: {tr(state)}"]
    last = run.progress()
    if last:
        share = last["step"] / last["max_steps"] if last.get("max_steps") else 0
        bar = "█" * round(share * 30) + "░" * (30 - round(share * 30))
        lines.append(t("`{bar}` step **{step} / {steps}** ({share}%), epoch {epoch}", bar=bar, step=last["step"],
                       steps=last["max_steps"], share=f"{100 * share:.0f}", epoch=f"{last['epoch']:.2f}"))
        parts = [t("loss **{loss}**", loss=f"{last['loss']:.3f}"),
                 t("learning rate {rate}", rate=f"{last['learning_rate']:.2e}"),
                 t("{speed} tokens/s", speed=f"{last['tokens_per_s']:.0f}") if last.get("tokens_per_s")
                 else t("measuring speed"),
                 t("memory {now} GiB (peak {peak})", now=f"{last['memory_gb'] * GB / GiB:.1f}",
                   peak=f"{last['peak_memory_gb'] * GB / GiB:.1f}")]
        if run.live:
            parts.append(t("ETA {time}", time=_duration(last.get("eta_s"))))
        lines.append(" · ".join(parts))
    elif run.live:
        lines.append(t("Starting: loading the model and the data…"))
    if run.status.error:
        lines.append(f"**{tr(run.status.said('error'))}**")
    if run.status.advice:
        lines.append(tr(run.status.said("advice")))
    lines.extend(run.damaged_records)
    if run.adapter and not run.live:
        lines.append(t("Adapter: `{path}`", path=str(run.adapter)))
    text = "  \n".join(lines)
    judged = verdict.judge(run)
    return tr(joined([text, judged.markdown()], "\n\n")) if judged else text


def next_steps(ctx: Context, selected: gr.Dropdown, progress: gr.Markdown) -> gr.Row:
    """Buttons to the tabs that use a trained run (Compare, Chat, Export), shown under the progress of a
    run that has ended with an adapter; the lists there start at the newest run with one."""
    with gr.Row(visible=False, elem_id="train-next") as row:
        for label, tab in NEXT_STEPS:
            button = gr.Button(_(label), variant="primary" if tab == "compare" else "secondary", elem_id=f"train-next-{tab}")
            button.click(visitor_ok(lambda tab=tab: gr.Tabs(selected=tab)), None, ctx.tabs, api_visibility="private")
    progress.change(visitor_ok(lambda name: gr.Row(visible=_ended_with_adapter(ctx, name))), selected, row,
                    api_visibility="private", show_progress="hidden")
    return row


def _ended_with_adapter(ctx: Context, name: str | None) -> bool:
    try:
        run = runs.load_run(ctx.workspace, name) if name else None
    except runs.RunError:  # renamed or deleted meanwhile
        return False
    return bool(run and not run.live and run.adapter)


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
        frame[["step", "loss"]].assign(series=t("training loss")),
        pd.DataFrame({"step": [e["step"] for e in evals], "loss": [e["eval_loss"] for e in evals],
                      "series": t("held-out loss")}),
    ], ignore_index=True)
    return loss, frame[["step", "learning rate"]]


def log_tail(run: runs.Run | None) -> str:
    if run is None:
        return ""
    lines = []
    for e in run.events:
        when = e.get("time", "")[11:19]
        if e["type"] == "message":
            text = tr(status.event_message(e))
            if e.get("level") == "error":
                text = t("ERROR {text}", text=text)
            lines.append(f"{when} {text}")
        elif e["type"] == "step":
            lines.append(f"{when} " + t("step {step}: loss {loss}, lr {rate}, grad norm {norm}", step=e["step"],
                                        loss=f"{e['loss']:.4f}", rate=f"{e['learning_rate']:.2e}",
                                        norm=f"{e.get('grad_norm') or 0:.3f}"))
        elif e["type"] == "eval":
            lines.append(f"{when} " + t("held-out loss {loss} at step {step}", loss=f"{e['eval_loss']:.4f}", step=e["step"]))
    return "\n".join(lines[-LOG_LINES:])


def probe_table(run: runs.Run | None) -> pd.DataFrame:
    headers, rows = probes.grid(run.probes if run else [])
    return pd.DataFrame(rows, columns=[t(headers[0]), *headers[1:]])  # then the prompts, as they are


def runs_table(workspace: Workspace) -> pd.DataFrame:
    rows = []
    for r in runs.list_runs(workspace):
        try:
            config = r.config
            model, dataset, preset = config.model.name_or_path, Path(config.dataset).name, config.preset or ""
        except ValueError:
            model = dataset = preset = t("(unreadable run.yaml)")
        last = r.progress()
        created = r.status.created
        rows.append([r.name, tr(r.state), f"{last['step']}/{last['max_steps']}" if last else "",
                     round(last["loss"], 3) if last else None, preset, model, dataset,
                     created.strftime("%Y-%m-%d %H:%M") if created else ""])
    return pd.DataFrame(rows, columns=[t("run"), t("state"), t("step"), t("loss"), t("preset"), t("model"), t("data set"),
                                       t("created")])
