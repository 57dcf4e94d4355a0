"""What the Dataset tab shows, as text, HTML and tables: the detection, the report, a page of examples, one
example rendered with its trained tokens marked, the token-length histogram and the statistics."""

from __future__ import annotations

import html
import re

import pandas as pd

from engine.data import RECORD_FORMATS
from engine.data.store import list_datasets

PAGE = 10  # examples a page of the examples table lists
TRAINED = "background:#bbf7d0;color:#14532d;border-radius:3px"
MASKED = "color:#6b7280"
SAVED_COLUMNS = ["name", "format", "rows", "from", "template", "created"]


def literal(text: str) -> str:
    """`text` shown as written in a Markdown component: its punctuation escaped, its "- " list lines kept."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


def detection_text(detection, shown: str | None, chosen: bool, source=None) -> str:
    if chosen:
        head = f"**Format:** {shown} — {RECORD_FORMATS[shown].title} (your choice; detected: {detection.format or 'unknown'})"
    elif detection.format:
        head = (f"**Detected:** {detection.format} — {RECORD_FORMATS[detection.format].title} "
                f"(confidence {detection.confidence:.0%})")
    else:
        head = "**Detected:** no known shape. Choose a format below and map your columns."
    lines = [head, *[f"- {literal(e)}" for e in detection.evidence]]
    lines.append(f"\n**Columns:** {', '.join(f'`{c}`' for c in detection.columns) or 'none'}")
    if source is not None:
        lines.append(f"\n**File:** {source.kind}, {source.encoding or 'binary'}")
    return "\n".join(lines)


def report_text(found) -> str:
    """The engine's drop report, and what to do when nothing is left to train on."""
    text = literal(found.report.summary())
    if not found.report.rows_kept:
        text += "\n\n**Nothing can be trained on yet:** check the format and the column mapping above."
    return text


def first_words(row: dict, limit: int = 100) -> str:
    """The start of an example on one line: its first user message, or its text."""
    if "messages" in row:
        text = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
    else:
        text = row.get("text", "")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def example_page(found, index: int) -> tuple[pd.DataFrame, str]:
    """The page of the examples table that holds example `index` (from 0), and its caption."""
    samples, unit = found.samples, found.report.unit
    start = index // PAGE * PAGE
    rows = [{"example": start + i + 1, unit: s.number,
             "turns": sum(1 for m in s.row.get("messages", []) if m["role"] != "system"),
             "starts with": first_words(s.row)} for i, s in enumerate(samples[start:start + PAGE])]
    caption = f"Showing {start + 1}–{start + len(rows)} of {len(samples):,} examples"
    if found.report.rows_kept > len(samples):
        caption += f" (the first {len(samples):,} of {found.report.rows_kept:,} kept)"
    caption += ". Click one to see it rendered below."
    return pd.DataFrame(rows, columns=["example", unit, "turns", "starts with"]), caption


def preview_html(p, unit: str, number: int, place: str) -> str:
    parts = "".join(
        f'<span class="{"trained" if trained else "masked"}" style="{TRAINED if trained else MASKED}">{html.escape(piece)}</span>'
        for piece, trained in p.segments
    )
    notes = [f"Example {place}, from {unit} {number}: {p.tokens} tokens, {p.trained} trained "
             f"(<span style=\"{TRAINED}\">highlighted</span>; the rest is context the model reads but is not taught)."]
    if p.truncated:
        notes.append(f"<b>Longer than {p.max_seq_length} tokens:</b> training cuts it there.")
    if not p.ends_with_eos:
        notes.append("<b>The last reply does not end with the end-of-sequence token:</b> the model may not learn to stop.")
    return (f"<p>{' '.join(notes)}</p><pre style=\"white-space:pre-wrap;word-break:break-word;font-size:13px;"
            f"line-height:1.5;padding:10px;border:1px solid #e5e7eb;border-radius:6px\">{parts}</pre>")


def not_rendered(model: str, error: Exception, done: str = "rendered") -> str:
    """Why the examples could not be rendered (or counted) for `model`, and what to do."""
    return (f"<p><b>Not {done} for '{html.escape(str(model))}':</b> {html.escape(str(error))} "
            "Change <i>Render for model</i> and press Enter.</p>")


def histogram_frame(s) -> tuple[pd.DataFrame, list[str]]:
    """The token-length histogram as (bin label, examples) rows, and the labels in their order."""
    bins = s.histogram()
    labels = [f"{b['start']:,}–{b['end']:,}" if b["end"] > b["start"] else f"{b['start']:,}" for b in bins]
    return pd.DataFrame({"tokens": labels, "examples": [b["examples"] for b in bins]}), labels


def stats_text(s) -> str:
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


def saved_frame(workspace) -> pd.DataFrame:
    """The table of the data sets saved in the workspace."""
    return pd.DataFrame([saved.row() for saved in list_datasets(workspace)], columns=SAVED_COLUMNS)
