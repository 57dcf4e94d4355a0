"""`python -m engine COMMAND ...`: the headless command line. Each command lives in its own module
with `register(subparsers)`, which sets `func(args) -> exit code` on its parser."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("engine.cli.generate", "engine.cli.train", "engine.cli.data", "engine.cli.export")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="LoRA Workbench, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
