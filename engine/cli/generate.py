"""`python -m engine generate PROMPT`: one streamed reply from a model, printed as it comes."""

from __future__ import annotations

import sys

from engine.chat.sampling import Sampling, load_presets, preset
from engine.i18n import msg, tr
from engine.workspace import Workspace


def register(sub) -> None:
    p = sub.add_parser("generate", help="print a streamed reply to one prompt")
    p.add_argument("prompt")
    p.add_argument("--model", default="default", help="'default', a folder or a Hugging Face id")
    p.add_argument("--preset", default="Leaderboard", choices=list(load_presets()))
    p.add_argument("--system", default=None, help="a system prompt")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--adapter", default=None, help="a LoRA adapter folder to answer with")
    p.add_argument("--workspace", default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from engine.chat.models import ModelManager  # torch loads only for this command

    try:
        values = preset(args.preset).model_dump()
        if args.max_new_tokens is not None:
            values["max_new_tokens"] = args.max_new_tokens
        values["seed"] = args.seed
        sampling = Sampling.parse(**values)
        manager = ModelManager(Workspace.from_env(args.workspace))
        manager.load(args.model, anywhere=True)
        if args.adapter:
            manager.attach_adapter("adapter", args.adapter)
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.prompt}
        ]
        shown = ""
        for reply in manager.stream(messages, sampling):
            print(reply.text[len(shown):] if reply.text.startswith(shown) else "\n" + reply.text, end="", flush=True)
            shown = reply.text
        print()
        print(tr(reply.stats.summary()), file=sys.stderr)
    except ValueError as e:
        print(tr(msg("error: {problem}", problem=e.args[0] if e.args else str(e))), file=sys.stderr)
        return 2
    return 0
