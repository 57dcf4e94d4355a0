"""`python -m engine export RUN --format FORMAT [--out DIR]`: export a run and verify it.

Exit code 0 when the export passed its verification, 1 when it was written but failed it (the
report says how), 2 when it could not be written (the message says why).
"""

from __future__ import annotations

import argparse
import sys

from engine.export.catalog import EXPORT_FORMATS
from engine.i18n import msg, tr


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="Export a trained run (adapter, merged, GGUF, Modelfile) and verify it.",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="The run's name (looked up in the workspace only), or the path of a run folder "
                   "anywhere, e.g. ./my-run or /data/runs/my-run.")
    p.add_argument("--format", "-f", required=True, action="append", choices=list(EXPORT_FORMATS),
                   help="What to export; repeat for several. " + " ".join(f"{k}: {v.help}" for k, v in EXPORT_FORMATS.items()))
    p.add_argument("--out", help="Write here instead of RUN/exports/FORMAT (one format only): a new or empty folder, "
                   "or an earlier export of the same format; a folder holding anything else is refused.")
    p.add_argument("--preset", default="Leaderboard", help="Sampling preset for merged16's generation config and the "
                   "Modelfile's PARAMETER lines (default: Leaderboard).")
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system", default="", help="System prompt for the Modelfile's SYSTEM line.")
    system.add_argument("--card", help="A character card (.json or .png) whose system prompt goes into SYSTEM.")
    p.add_argument("--gguf", choices=("f16", "q8_0", "q4_k_m"),
                   help="With --format modelfile: which GGUF export it goes beside (default: the smallest there is).")
    p.add_argument("--push", metavar="OWNER/NAME", help="Then push the export to this Hugging Face Hub repository "
                   "(token from the HF_TOKEN environment variable).")
    p.add_argument("--public", action="store_true", help="Make a new Hub repository public (default: private).")
    p.add_argument("--workspace", help="The workspace folder (default: $WORKBENCH_HOME or ./workspace).")
    p.set_defaults(func=run)


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {tr(message)}", file=sys.stderr, flush=True)


def run(args) -> int:
    from engine.errors import plain
    from engine.export.exporter import export  # torch loads only for this command
    from engine.export.source import run_folder
    from engine.workspace import BadName, Workspace, check_name

    if args.out and len(args.format) > 1:
        print(tr(msg("--out takes one format at a time.")), file=sys.stderr)
        return 2
    workspace = Workspace.from_env(args.workspace)
    code = 0
    try:
        try:
            run = check_name(args.run, "run name")
        except BadName:  # not a name, so a path the person typed: that folder, wherever it is
            run = run_folder(args.run)
        system = args.system
        if args.card:
            from engine.data.cards import read_card

            system = read_card(args.card).system_prompt()
        for fmt in args.format:
            result = export(workspace, run, fmt, out=args.out, preset=args.preset, system=system,
                            gguf_format=args.gguf, progress=_progress)
            print(tr(result.summary()))
            code = max(code, 0 if result.passed else 1)
            if args.push:
                from engine.export.hub import push

                folder = result.path if result.path.is_dir() else result.path.parent
                print(tr(msg("Pushed to {where}", where=push(folder, args.push, private=not args.public, progress=_progress))))
    except ValueError as e:  # ExportError and the data/sampling errors: messages written for people
        print(tr(msg("Export failed: {problem}", problem=e.args[0] if e.args else str(e))), file=sys.stderr)
        return 2
    except OSError as e:  # the machine's failures outside the export itself (reading a card, pushing)
        if plain(e) is None:
            raise
        print(tr(msg("Export failed: {problem}", problem=plain(e))), file=sys.stderr)
        return 2
    return code

