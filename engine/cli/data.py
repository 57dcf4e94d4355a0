"""`python -m engine data inspect FILE` and `python -m engine data import FILE --name NAME`.

inspect prints the detected format with its evidence, rows in / kept / dropped by reason, the
errors with their line or row, and the first kept example rendered through the model's chat
template with the trained part marked; `--json` prints one JSON object instead. A file that cannot
be used exits with status 2 and a plain message.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.data.errors import DataError
from engine.data.formats import RECORD_FORMATS
from engine.data.pipeline import Inspection, Options, inspect
from engine.data.rules import Rules
from engine.i18n import Message, joined, msg, tr
from engine.train.config import TEMPLATE_CHOICES


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect and import data sets")
    commands = data.add_subparsers(dest="data_command", required=True)

    look = commands.add_parser("inspect", help="show what a data file holds and what would be trained")
    _common(look)
    look.add_argument("--json", action="store_true", help="print one JSON object")
    look.add_argument("--no-render", action="store_true", help="skip rendering the example (no model needed)")
    look.set_defaults(func=_inspect)

    save = commands.add_parser("import", help="save a data file to the workspace as a data set")
    _common(save)
    save.add_argument("--name", required=True, help="the data set's name, e.g. pirate-v1")
    save.add_argument("--overwrite", action="store_true", help="replace a data set of the same name")
    save.set_defaults(func=_import)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON, JSONL, CSV, TSV, Parquet, text, or a character card (.json/.png)")
    parser.add_argument("--format", choices=list(RECORD_FORMATS), help="the record shape (default: detected)")
    parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                        help="map a column to a field of the format, e.g. --map prompt=question (repeatable)")
    parser.add_argument("--system", default="", help="system prompt for every conversation without one")
    parser.add_argument("--min-chars", type=int, default=Rules.min_chars, help="drop conversations shorter than this")
    parser.add_argument("--require-system", action="store_true", help="drop conversations without a system turn")
    parser.add_argument("--card-user", default="User", help="the name {{user}} becomes in a character card's dialogues")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep conversations that repeat an earlier one")
    parser.add_argument("--text-only", action="store_true", help="a file with images: use its text-only rows")
    parser.add_argument("--all-branches", action="store_true",
                        help="message trees: every branch ending in a reply, not only the top-ranked one")
    parser.add_argument("--model", default="default", help="model whose chat template renders the example")
    parser.add_argument("--template", choices=TEMPLATE_CHOICES, default="model",
                        help="the model's own template, or force ChatML or Alpaca")
    parser.add_argument("--fallback", choices=("chatml", "alpaca"), default="chatml",
                        help="template for a model that has none")
    parser.add_argument("--workspace", default=None, help="workspace folder (default: $WORKBENCH_HOME or ./workspace)")


def _options(args) -> Options:
    mapping = {}
    for item in args.map:
        field, sep, column = item.partition("=")
        if not sep:
            raise DataError(msg("--map takes FIELD=COLUMN (e.g. prompt=question), not '{item}'.", item=item))
        mapping[field.strip()] = column.strip()
    return Options(args.format, mapping, args.system, Rules(args.min_chars, args.require_system),
                   card_user=args.card_user, text_only=args.text_only, keep_duplicates=args.keep_duplicates,
                   all_branches=args.all_branches)


def _progress():
    from tqdm import tqdm

    bar = tqdm(total=0, unit="B", unit_scale=True, desc=tr(msg("Reading")), file=sys.stderr, leave=False, delay=0.5)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, update


def _inspect(args) -> int:
    bar, update = _progress()
    try:
        inspection = inspect(args.file, _options(args), keep_rows=False, progress=update)
    except DataError as e:
        print(tr(msg("Error: {problem}", problem=e.args[0])), file=sys.stderr)
        return 2
    finally:
        bar.close()
    rendered, render_note = None, None
    if inspection.samples and not args.no_render:
        try:
            rendered = _render(inspection.samples[0].row, args)
        except (ValueError, OSError, RuntimeError) as e:
            render_note = msg("Not rendered: {problem}", problem=e.args[0] if e.args else str(e))
    if args.json:
        out = inspection.as_dict()
        out["rendered"] = rendered and {"text": rendered.text, "segments": rendered.segments,
                                        "tokens": rendered.tokens, "trained": rendered.trained}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(tr(_describe(inspection)))
        if rendered:
            print("\n" + tr(msg("First kept example (line {number}), rendered for training: {tokens} tokens, {trained} "
                                "trained, shown between [[ ]]:" if inspection.report.unit == "line" else
                                "First kept example (row {number}), rendered for training: {tokens} tokens, {trained} "
                                "trained, shown between [[ ]]:", number=inspection.samples[0].number,
                                tokens=rendered.tokens, trained=rendered.trained)) + "\n")
            print("".join(f"[[{piece}]]" if trained else piece for piece, trained in rendered.segments))
    if render_note:
        print(tr(render_note), file=sys.stderr)
    return 0


def _render(row: dict, args):
    from engine.data.render import load_tokenizer, preview
    from engine.chat.models import resolve_model
    from engine.workspace import Workspace

    path = resolve_model(args.model, Workspace.from_env(args.workspace), anywhere=True)
    return preview(row, load_tokenizer(path, args.template, args.fallback))


def _describe(inspection: Inspection) -> Message:
    d, report = inspection.detection, inspection.report
    source = inspection.source
    lines = [msg("File: {name} ({kind}, {encoding}, {size} bytes)", name=source.path.name, kind=source.kind,
                 encoding=source.encoding or msg("binary"), size=source.size)]
    if inspection.format == d.format:
        lines.append(msg("Format: {format} (confidence {confidence:.0%})", format=inspection.format, confidence=d.confidence))
        lines += [msg("  {evidence}", evidence=e) for e in d.evidence]
    else:
        lines.append(msg("Format: {format} (chosen; detected: {detected})", format=inspection.format,
                         detected=d.format or msg("unknown")))
    if inspection.mapping:
        lines.append(msg("Mapping: {mapping}", mapping=", ".join(f"{field} <- '{column}'"
                                                                for field, column in inspection.mapping.items())))
    lines.append(report.summary())
    return joined(lines, "\n")


def _import(args) -> int:
    from engine.data.store import import_file
    from engine.workspace import Workspace

    bar, update = _progress()
    try:
        target, inspection = import_file(
            Workspace.from_env(args.workspace), args.name, args.file, _options(args),
            template=args.template, fallback=args.fallback, overwrite=args.overwrite, progress=update,
        )
    except DataError as e:
        print(tr(msg("Error: {problem}", problem=e.args[0])), file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(tr(_describe(inspection)))
    print("\n" + tr(msg("Saved {n} rows as '{name}' in {folder}", n=inspection.report.rows_kept, name=args.name,
                        folder=target)))
    return 0
