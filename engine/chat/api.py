"""The OpenAI-compatible API's requests and answers, mapped onto the engine's chat (README, "Connecting a
chat front end"). Models are the compare sides: `base`, `RUN`, `RUN:checkpoint-N`. Fields a front end
sends that the engine has no use for are accepted and ignored; bad values get an OpenAI-shaped error."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.chat.models import ModelError
from engine.chat.sampling import Sampling, SamplingError, preset
from engine.compare import sides
from engine.validation import sentences
from engine.workspace import Workspace

DEFAULT_PRESET = "Leaderboard"  # the Chat tab's default: fields a request leaves out take its values
FINISH = {"stop": "stop", "cancelled": "stop", "length": "length", "time": "length"}


class APIError(ValueError):
    """An error as OpenAI's API shapes it: an HTTP status and a body with a message that says what to do."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: the text ones are kept
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")  # SillyTavern and others send many more fields

    model: str = sides.BASE
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: list[str] = []
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict | None = None

    @field_validator("n")
    @classmethod
    def _one(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported: ask again for another answer")
        return n

    @field_validator("stop", mode="before")
    @classmethod
    def _stops(cls, stop):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > 4 or any(not isinstance(s, str) or not s for s in stops):
            raise ValueError("give at most 4 stop strings, none of them empty")
        return stops

    def sampling(self) -> Sampling:
        """The engine's sampling: the default preset, with what the request sets. frequency_penalty and
        presence_penalty have no counterpart in the engine and are ignored (repetition_penalty is there)."""
        values = preset(DEFAULT_PRESET).model_dump()
        asked = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k, "min_p": self.min_p,
                 "repetition_penalty": self.repetition_penalty, "seed": self.seed,
                 "max_new_tokens": self.max_completion_tokens or self.max_tokens}
        values.update({k: v for k, v in asked.items() if v is not None})
        try:
            return Sampling.parse(**values)
        except SamplingError as e:
            raise APIError(str(e).replace("max_new_tokens", "max_tokens")) from None

    @property
    def usage_in_stream(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatRequest(_Request):
    messages: list[Message] = Field(..., min_length=1)

    def chat(self) -> list[dict]:
        """The conversation for the chat template (a `developer` message is a system prompt)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Request):
    prompt: str | list[str]

    def text(self) -> str:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise APIError("Send one prompt per request.", param="prompt")
            return self.prompt[0]
        return self.prompt


def parse(kind: type[_Request], body) -> _Request:
    if not isinstance(body, dict):
        raise APIError("The request body must be a JSON object.")
    try:
        return kind(**body)
    except ValidationError as e:
        raise APIError(sentences(e)) from None


def models(workspace: Workspace) -> dict:
    now = int(time.time())
    return {"object": "list", "data": [{"id": side.spec, "object": "model", "created": now, "owned_by": "lora-workbench"}
                                       for side in sides.available(workspace)]}


def side_of(workspace: Workspace, name: str) -> sides.Side:
    try:
        return sides.parse(workspace, name)
    except (ModelError, ValueError) as e:
        names = ", ".join(side.spec for side in sides.available(workspace))
        raise APIError(f"There is no model '{name}'. {e} The models are: {names}.", status=404,
                       param="model", code="model_not_found") from None


class StopStrings:
    """Cuts streamed text at the first stop string. A tail that could be the start of one is held back
    until the next piece shows whether it is."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.sent = 0
        self.stopped = False

    def feed(self, text: str) -> str:
        """`text` is the whole reply so far; returns the new part that may be sent."""
        if self.stopped:
            return ""
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            piece, self.sent = text[self.sent:cut], cut
            return piece
        hold = max((k for s in self.stops for k in range(len(s) - 1, 0, -1) if text.endswith(s[:k])), default=0)
        end = max(self.sent, len(text) - hold)
        piece, self.sent = text[self.sent:end], end
        return piece

    def rest(self, text: str) -> str:
        """At the end of the reply: the held-back tail (it was no stop string after all)."""
        return "" if self.stopped else text[self.sent:]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
