"""`python -m engine train PATH`: the one entry point of training, for the app and for headless use.

    python -m engine train RUN_DIR                 run (or resume) the run in that folder
    python -m engine train CONFIG.yaml             make a run folder in the workspace from the config, run it
    python -m engine train CONFIG.yaml --plan      print the plan (data, steps, memory, time) and stop
    python -m engine train CONFIG.yaml --plan --measure   time a few real steps first, for the time estimate

The workspace (models, data sets, the training lock) is --workspace, else $WORKBENCH_HOME, else
./workspace, wherever the run folder is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.i18n import msg, tr


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a LoRA adapter: a run folder, or a run config (YAML) to start",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path, help="a run folder holding run.yaml, or a run config file")
    p.add_argument("--workspace", help="the workspace folder (default: $WORKBENCH_HOME or ./workspace)")
    p.add_argument("--name", help="name of the new run folder (default: preset, data set and time)")
    p.add_argument("--plan", action="store_true", help="print the run plan instead of training")
    p.add_argument("--measure", action="store_true", help="with --plan: time a few real training steps first")
    p.add_argument("--time-steps", type=int, help=argparse.SUPPRESS)  # the worker side of a measurement
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.train import config as run_config
    from engine.train import plan, runs, sources
    from engine.workspace import Workspace

    try:
        # Never inferred from where a run folder is: a run folder may be anywhere.
        workspace = Workspace.from_env(args.workspace)
        if args.path.is_dir():
            path = args.path.resolve()
            if args.time_steps:
                return _time_steps(path, workspace, args.time_steps)
            config = runs.read_run(path).config
            if not args.plan:
                return _train(path, workspace)
        else:
            config = sources.absolute_dataset(run_config.load(args.path))
        if args.plan:
            if args.measure:
                plan.measure(config, workspace)
            print(tr(plan.make(config, workspace).summary()).replace("  \n", "\n").replace("**", ""))
            return 0
        run = runs.create_run(workspace, config, args.name)
        print(tr(msg("Run folder: {path}", path=run.path)), flush=True)
        return _train(run.path, workspace)
    except ValueError as e:
        print(f"error: {tr(e.args[0]) if e.args else e}", file=sys.stderr)  # "error: " is read by plan.measure
        return 2


def _train(path: Path, workspace) -> int:
    from engine.train import runs, worker

    code = worker.main(path, workspace)
    status = runs.read_status(path)
    print(tr(msg("{state}: {error} {advice}", state=msg(status.state), error=status.said("error") or "",
                 advice=status.said("advice") or "")).strip())
    return code


def _time_steps(path: Path, workspace, steps: int) -> int:
    import threading

    from engine.train import backend, plan, runs, worker
    from engine.hardware import detect

    with runs.worker_locks(path, workspace):
        worker.train(path, workspace, threading.Event(), measure_steps=steps)
    config = runs.read_run(path).config
    settings = backend.resolve(config, detect())
    print(json.dumps(plan.known_speed(workspace, config, settings)))
    return 0
