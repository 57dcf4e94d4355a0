"""LoRA Workbench: `python app.py` starts the web app (http://127.0.0.1:7860 by default)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from engine import space

NOTICES = space.prepare()  # before huggingface_hub is imported: on a Space the caches go to its storage

from engine.access import Policy  # noqa: E402
from engine.chat.models import ModelManager  # noqa: E402
from engine.data.limits import max_file_bytes  # noqa: E402
from engine.hardware import detect  # noqa: E402
from engine.workspace import Workspace  # noqa: E402
from ui import api, build  # noqa: E402
from ui.i18n import I18N  # noqa: E402
from ui.context import Context  # noqa: E402

LOOPBACK = ("127.0.0.1", "localhost", "::1")
OPEN_WARNING = ("The app listens on %s with no access setting: anyone who reaches it can load models, train, "
                "delete runs and export. Set WORKBENCH_AUTH=user:password, or WORKBENCH_DEMO=1 with "
                "WORKBENCH_OWNERS (README, 'Sharing the app').")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA Workbench: fine-tune, compare, chat, export.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--workspace", default=None, help="folder for models/, datasets/, runs/ (default: $WORKBENCH_HOME or ./workspace)")
    parser.add_argument("--model", default="default", help="model to load at start: 'default', a folder or a Hub id")
    parser.add_argument("--no-model", action="store_true", help="start without loading a model")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        policy = Policy.from_env()
    except ValueError as e:
        sys.exit(str(e))
    public = args.share or args.host not in LOOPBACK  # reachable from other machines
    if public and not policy.guarded:
        logging.warning(OPEN_WARNING, "a public share link" if args.share else args.host)
    workspace = Workspace.from_env(args.workspace)
    from huggingface_hub.constants import HF_HOME

    logging.info("workspace %s; Hugging Face cache %s", workspace.root, HF_HOME)
    hardware = detect()
    manager = ModelManager(workspace, hardware)
    if not args.no_model:
        logging.info("loading %s", args.model)
        manager.load(args.model, anywhere=True)
    ctx = Context(workspace, manager, hardware)
    demo = build(ctx, policy, NOTICES)
    key = os.environ.get("WORKBENCH_API_KEY", "").strip() or None
    key_required = public or policy.guarded
    # The API's routes go in as the server is made, so that /v1 answers from the first request on.
    routes = api.router(ctx, policy, key, key_required=key_required).routes
    demo.queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, show_error=False, share=args.share,
        auth=list(policy.logins) or None, max_file_size=max_file_bytes(), prevent_thread_lock=True,
        i18n=I18N, app_kwargs={"routes": routes})  # i18n: the page in the browser's language (ui/i18n.py)
    logging.info("OpenAI-compatible API at %sv1%s", demo.local_url,
                 " (refused until WORKBENCH_API_KEY is set)" if key_required and not key else "")
    demo.block_thread()


if __name__ == "__main__":
    main()
