"""The OpenAI-compatible HTTP API: a second front end beside the page, on the same server and port, for
SillyTavern and other chat front ends (engine/chat/api.py maps requests onto the engine). Requests
take their turn at the one resident model with the page's chats."""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from engine.access import OWNER, VISITOR, Policy, acting_as
from engine.chat import api
from engine.chat.generation import PromptTooLong, fit_prompt
from engine.chat.models import ModelError
from engine.chat.serving import Busy
from engine.compare import sides
from engine.errors import plain
from ui.context import Context

log = logging.getLogger("workbench.api")
KEY_NEEDED = ("This app can be reached from other machines, so its API needs a key: the owner sets WORKBENCH_API_KEY "
              "and the front end sends it as the API key (Authorization: Bearer KEY).")


def router(ctx: Context, policy: Policy, key: str | None, key_required: bool) -> APIRouter:
    """The /v1 routes. `key`: the API key callers must send (WORKBENCH_API_KEY); without one, where
    `key_required` (the app listens beyond this machine, or access control is on), every call is refused."""
    routes = APIRouter(prefix="/v1")
    role = VISITOR if policy.demo else OWNER  # the API only chats: what a demo visitor may do

    def check(request: Request) -> None:
        if key:
            sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), key.encode()):
                raise api.APIError("The API key is missing or wrong: send the app's WORKBENCH_API_KEY as the API key.",
                                   status=401, code="invalid_api_key")
        elif key_required:
            raise api.APIError(KEY_NEEDED, status=401, code="invalid_api_key")

    async def body_of(request: Request, kind):
        check(request)
        try:
            return api.parse(kind, await request.json())
        except json.JSONDecodeError:
            raise api.APIError("The request body is not JSON.") from None

    @routes.get("/models")
    async def list_models(request: Request):
        try:
            check(request)
        except api.APIError as e:
            return JSONResponse(e.body(), status_code=e.status)
        return await run_in_threadpool(api.models, ctx.workspace)

    async def reply(request: Request, kind: type, text_of, object_name: str):
        """The answer, or an OpenAI-shaped error: a sentence to the caller, the details to the log."""
        try:
            req = await body_of(request, kind)
            session = f"api:{request.client.host if request.client else ''}"
            return await _answer(ctx, role, req, text_of(req), object_name, session)
        except api.APIError as e:
            return JSONResponse(e.body(), status_code=e.status)
        except Busy as e:
            busy = api.APIError(str(e), status=429, kind="rate_limit_error", code="rate_limit_exceeded")
            return JSONResponse(busy.body(), status_code=429, headers={"Retry-After": str(e.retry_after)})
        except Exception as e:
            log.exception("API request failed")
            failed = api.APIError(plain(e) or "The app could not answer; the details are in its log.", status=500,
                                  kind="server_error")
            return JSONResponse(failed.body(), status_code=500)

    @routes.post("/chat/completions")
    async def chat_completions(request: Request):
        return await reply(request, api.ChatRequest, lambda req: req.chat(), "chat.completion")

    @routes.post("/completions")
    async def completions(request: Request):
        return await reply(request, api.CompletionRequest, lambda req: req.text(), "text_completion")

    return routes


async def _answer(ctx: Context, role: str, req, messages: list[dict] | str, kind: str, session: str):
    """A chat (`messages`) or a text completion (a `str` prompt, sent without a chat template)."""
    with acting_as(role):
        start = await run_in_threadpool(_start, ctx, req, messages, session)
    if req.stream:
        return StreamingResponse(_events(ctx, req, start, kind), media_type="text/event-stream")
    with acting_as(role):
        return await run_in_threadpool(_whole, ctx, req, start, kind)


def _start(ctx: Context, req, messages: list[dict] | str, session: str) -> dict:
    """What a reply needs before its first token: the adapter attached, the prompt's size, and its place in
    the batch (serving.Busy where there is none: the caller gets 429)."""
    side = api.side_of(ctx.workspace, req.model)
    sampling = req.sampling()
    try:
        name = sides.activate(ctx.manager, side)
        loaded = ctx.manager.loaded
        prompt = fit_prompt(loaded.tokenizer, messages, loaded.context, sampling.max_new_tokens)
        cancel = threading.Event()
        replies = ctx.manager.stream(messages, sampling, adapter=name, cancel=cancel, session=session)
    except PromptTooLong as e:
        raise api.APIError(str(e), param="messages", code="context_length_exceeded") from None
    except ModelError as e:
        raise api.APIError(str(e), status=503, kind="server_error", code="model_not_loaded") from None
    except Busy:
        raise
    except ValueError as e:  # the chat template refused the conversation (e.g. roles that must alternate)
        raise api.APIError(f"The model's chat template refused this conversation: {e}", param="messages") from None
    return {"id": api.new_id("chatcmpl" if isinstance(messages, list) else "cmpl"), "created": int(time.time()),
            "replies": replies, "cancel": cancel, "prompt_tokens": int(prompt.input_ids.shape[1])}


def _pieces(ctx: Context, req, start: dict):
    """(new text, stats or None) as the reply streams, cut at the request's stop strings."""
    cancel = start["cancel"]
    stops = api.StopStrings(req.stop)
    text, stats = "", None
    try:
        for reply in start["replies"]:
            if reply.waiting:
                continue
            text, stats = reply.text, reply.stats or stats
            piece = stops.feed(text)
            if piece:
                yield piece, None
            if stops.stopped:
                cancel.set()
                break
    finally:
        cancel.set()  # a client that went away ends its generation
    tail = stops.rest(text)
    if tail:
        yield tail, None
    finish = "stop" if stops.stopped else api.FINISH.get(stats.finish if stats else "stop", "stop")
    yield "", (finish, stats.new_tokens if stats else 0)


def _whole(ctx: Context, req, start: dict, kind: str) -> dict:
    text, end = "", ("stop", 0)
    for piece, done in _pieces(ctx, req, start):
        text += piece
        end = done or end
    finish, tokens = end
    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
              if kind == "chat.completion" else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None})
    return {"id": start["id"], "object": kind, "created": start["created"], "model": req.model, "choices": [choice],
            "usage": api.usage(start["prompt_tokens"], tokens)}


def _events(ctx: Context, req, start: dict, kind: str):
    """Server-sent events as OpenAI streams them, ending with `data: [DONE]`."""
    chunk = {"id": start["id"], "object": f"{kind}.chunk" if kind == "chat.completion" else kind,
             "created": start["created"], "model": req.model}

    def event(choice: dict | None, **extra) -> str:
        return "data: " + json.dumps({**chunk, "choices": [choice] if choice else [], **extra}) + "\n\n"

    chat = kind == "chat.completion"

    def choice(text: str | None, finish: str | None) -> dict:
        if chat:
            return {"index": 0, "delta": {} if text is None else {"content": text}, "finish_reason": finish}
        return {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}

    if chat:
        yield event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
    for piece, done in _pieces(ctx, req, start):
        if piece:
            yield event(choice(piece, None))
        if done:
            finish, tokens = done
            yield event(choice(None, finish))
            if req.usage_in_stream:
                yield event(None, usage=api.usage(start["prompt_tokens"], tokens))
    yield "data: [DONE]\n\n"
