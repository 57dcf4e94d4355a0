"""LoRA Workbench: `python app.py` starts the web app (http://127.0.0.1:7860 by default)."""

from __future__ import annotations

import argparse
import logging
import os

from engine.hardware import detect
from engine.chat.models import ModelManager
from engine.workspace import Workspace
from ui import build
from ui.context import Context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA Workbench: fine-tune, compare, chat, export.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--workspace", default=None, help="folder for models/, datasets/, runs/ (default: $WORKBENCH_HOME or ./workspace)")
    parser.add_argument("--model", default="default", help="model to load at start: 'default', a folder or a Hub id")
    parser.add_argument("--no-model", action="store_true", help="start without loading a model")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    workspace = Workspace.from_env(args.workspace)
    hardware = detect()
    manager = ModelManager(workspace, hardware)
    if not args.no_model:
        logging.info("loading %s", args.model)
        manager.load(args.model)
    demo = build(Context(workspace, manager, hardware))
    demo.queue(default_concurrency_limit=4).launch(server_name=args.host, server_port=args.port, show_error=False)


if __name__ == "__main__":
    main()
