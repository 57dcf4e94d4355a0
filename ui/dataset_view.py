"""What the Dataset tab shows, as text, HTML and tables: the detection, the report, a page of examples, one
example rendered with its trained tokens marked, the token-length histogram and the statistics."""

from __future__ import annotations

import html
import re

import pandas as pd

from engine.data import RECORD_FORMATS
from engine.data.store import list_datasets
from ui.errors import said
from ui.i18n import t, tr

PAGE = 10  # examples a page of the examples table lists
TRAINED = "background:#bbf7d0;color:#14532d;border-radius:3px"
MASKED = "color:#6b7280"
# The rendered example: its notes, then its text with the trained tokens marked.
PREVIEW = ('<p>{notes}</p><pre style="white-space:pre-wrap;word-break:break-word;font-size:13px;line-height:1.5;'
           'padding:10px;border:1px solid #e5e7eb;border-radius:6px">{parts}</pre>')
SAVED_COLUMNS = ["name", "format", "rows", "from", "template", "created"]


def literal(text: str) -> str:
    """`text` shown as written in a Markdown component: its punctuation escaped, its "- " list lines kept."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


def detection_text(detection, shown: str | None, chosen: bool, source=None) -> str:
    if chosen:
        head = t("**Format:** {format} — {title} (your choice; detected: {detected})", format=shown,
                 title=tr(RECORD_FORMATS[shown].title), detected=detection.format or t("unknown"))
    elif detection.format:
        head = t("**Detected:** {format} — {title} (confidence {confidence:.0%})", format=detection.format,
                 title=tr(RECORD_FORMATS[detection.format].title), confidence=detection.confidence)
    else:
        head = t("**Detected:** no known shape. Choose a format below and map your columns.")
    lines = [head, *[f"- {literal(tr(e))}" for e in detection.evidence]]
    columns = ", ".join(f"`{c}`" for c in detection.columns) or t("none")
    lines.append("\n" + t("**Columns:** {columns}", columns=columns))
    if source is not None:
        lines.append("\n" + t("**File:** {kind}, {encoding}", kind=source.kind, encoding=source.encoding or t("binary")))
    return "\n".join(lines)


def report_text(found) -> str:
    """The engine's drop report, and what to do when nothing is left to train on."""
    text = literal(tr(found.report.summary()))
    if not found.report.rows_kept:
        text += "\n\n" + t("**Nothing can be trained on yet:** check the format and the column mapping above.")
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
    if found.report.rows_kept > len(samples):
        caption = t("Showing {first}–{last} of {count:,} examples (the first {count:,} of {kept:,} kept). Click one "
                    "to see it rendered below.", first=start + 1, last=start + len(rows), count=len(samples),
                    kept=found.report.rows_kept)
    else:
        caption = t("Showing {first}–{last} of {count:,} examples. Click one to see it rendered below.",
                    first=start + 1, last=start + len(rows), count=len(samples))
    return pd.DataFrame(rows, columns=["example", unit, "turns", "starts with"]), caption


def preview_html(p, unit: str, number: int, place: str) -> str:
    parts = "".join(
        f'<span class="{"trained" if trained else "masked"}" style="{TRAINED if trained else MASKED}">{html.escape(piece)}</span>'
        for piece, trained in p.segments
    )
    notes = [t("Example {place}, from {unit} {number}: {tokens} tokens, {trained} trained (<span style=\"{style}\">"
               "highlighted</span>; the rest is context the model reads but is not taught).", place=place,
               unit=tr(unit), number=number, tokens=p.tokens, trained=p.trained, style=TRAINED)]
    if p.truncated:
        notes.append(t("<b>Longer than {limit} tokens:</b> training cuts it there.", limit=p.max_seq_length))
    if not p.ends_with_eos:
        notes.append(t("<b>The last reply does not end with the end-of-sequence token:</b> the model may not learn "
                       "to stop."))
    return PREVIEW.format(notes=" ".join(notes), parts=parts)


def not_rendered(model: str, error: Exception, done: str = "rendered") -> str:
    """Why the examples could not be rendered (or counted) for `model`, and what to do."""
    template = ("<p><b>Not rendered for '{model}':</b> {problem} Change <i>Render for model</i> and press Enter.</p>"
                if done == "rendered" else
                "<p><b>Not counted for '{model}':</b> {problem} Change <i>Render for model</i> and press Enter.</p>")
    return t(template, model=html.escape(str(model)), problem=html.escape(said(error)))


def histogram_frame(s) -> tuple[pd.DataFrame, list[str]]:
    """The token-length histogram as (bin label, examples) rows, and the labels in their order."""
    bins = s.histogram()
    labels = [f"{b['start']:,}–{b['end']:,}" if b["end"] > b["start"] else f"{b['start']:,}" for b in bins]
    return pd.DataFrame({"tokens": labels, "examples": [b["examples"] for b in bins]}), labels


def stats_text(s) -> str:
    share = s.trained_tokens / s.tokens_per_epoch if s.tokens_per_epoch else 0
    lines = [
        t("- **Examples:** {rows:,} (measured on a sample of {measured:,})", rows=s.rows, measured=s.measured)
        if s.sampled else t("- **Examples:** {rows:,}", rows=s.rows),
        t("- **Tokens:** {total:,} in all; **{per_epoch:,} per epoch** at max length {limit}",
          total=s.total_tokens, per_epoch=s.tokens_per_epoch, limit=s.max_seq_length),
        t("- **Trained tokens:** {trained:,} per epoch ({share:.0%})", trained=s.trained_tokens, share=share),
        t("- **Cut at max length:** {share:.1%} of examples", share=s.truncated_share),
        t("- **Longest:** {longest:,} tokens · **shortest:** {shortest:,}", longest=max(s.lengths),
          shortest=min(s.lengths)),
    ]
    if s.turns_max:
        lines.append(t("- **Turns per conversation:** {low}–{high} (mean {mean})", low=s.turns_min, high=s.turns_max,
                       mean=s.turns_mean))
    if s.nothing_trained:
        lines.append(t("- **{count:,} examples train nothing** at this max length (their replies come after the cut); "
                       "raise it, or they are left out.", count=s.nothing_trained))
    if s.no_eos:
        lines.append(t("- **{count:,} examples do not end with the end-of-sequence token.**", count=s.no_eos))
    return "\n".join(lines)


def saved_frame(workspace) -> pd.DataFrame:
    """The table of the data sets saved in the workspace."""
    return pd.DataFrame([saved.row() for saved in list_datasets(workspace)], columns=SAVED_COLUMNS).rename(columns=t)
