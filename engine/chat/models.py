"""The one resident model for chat and compare (DESIGN.md, decision 3): load, swap, attach and
switch adapters, unload, make room for training. Base-versus-tuned uses the same weights with the
adapter switched off. Requests take turns at it, first come first served (`TurnQueue`)."""

from __future__ import annotations

import functools
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from engine import adapters
from engine.access import MODEL_PLACES, allowed_model_folder, require_owner
from engine.chat import generation, serving
from engine.chat.turns import TurnQueue
from engine.default_model import NAME as DEFAULT_NAME
from engine.default_model import ensure_default_model
from engine.hardware import Hardware, detect, free_memory, host_memory
from engine.chat.sampling import Sampling
from engine.chat.templates import load_tokenizer, stop_token_ids
from engine.chat.thinking import switched
from engine.i18n import joined, msg
from engine.workspace import Workspace

DEFAULT = "default"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(ValueError):
    """A model that cannot be loaded or used as asked; the message says what to do."""


def resolve_model(spec: str, workspace: Workspace, trust_remote_code: bool = False, *, anywhere: bool = False) -> Path:
    """A local folder to load from: the default model, a model folder, or a Hub id (downloaded into the
    Hugging Face cache; tqdm progress, which the UI tracks). Folders come only from the places
    `engine.access` allows, and a refusal reads the same whether or not the folder exists; `anywhere`
    is for the command line and for runs whose model was checked when they started."""
    spec = (spec or DEFAULT).strip()
    if spec in (DEFAULT, DEFAULT_NAME):
        return ensure_default_model(workspace.models)
    for candidate in (workspace.models / spec, Path(spec).expanduser()):
        if not (anywhere or allowed_model_folder(candidate, workspace.models)):
            continue
        if candidate.is_dir():
            if not (candidate / "config.json").exists():
                raise ModelError(
                    msg("The folder '{candidate}' is not a model: it has no config.json. Choose "
                        "the folder that holds config.json and the weights (*.safetensors), or "
                        "type a Hugging Face id like 'unsloth/Qwen3-8B'.", candidate=candidate)
                )
            return candidate
    if not HUB_ID.match(spec):
        raise ModelError(msg("'{spec}' is not a model this app can load. {places} Check the spelling or the "
                             "place.", spec=spec, places=msg(MODEL_PLACES)))
    return _download(spec)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except GatedRepoError:
        raise ModelError(
            msg("'{repo_id}' is gated on the Hugging Face Hub: accept its licence on its page, "
                "then set HF_TOKEN and try again.", repo_id=repo_id)
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            msg("There is no model '{repo_id}' on the Hugging Face Hub (or it is private). Check "
                "the spelling, e.g. 'unsloth/Qwen3-8B'.", repo_id=repo_id)
        ) from None
    except LocalEntryNotFoundError:
        raise ModelError(
            msg("Could not download '{repo_id}': the Hugging Face Hub cannot be reached from "
                "this machine and the model is not in the local cache. Connect to the internet, "
                "or use a local folder or the default model.", repo_id=repo_id)
        ) from None


def four_bit_problem(hardware: Hardware) -> str | None:
    """Why 4-bit (QLoRA) cannot work on this machine, or None where it can."""
    if hardware.device != "cuda":
        return msg("4-bit needs an NVIDIA GPU; this machine has none.")
    if not hardware.bitsandbytes:
        return msg("4-bit needs the bitsandbytes package, which is not installed here (`pip install "
                "bitsandbytes`).")
    return None


@dataclass
class Loaded:
    spec: str
    path: Path
    model: object
    tokenizer: object
    load_in_4bit: bool
    max_seq_length: int
    adapters: dict[str, Path] = field(default_factory=dict)
    peft_names: dict[str, str] = field(default_factory=dict)  # peft refuses names with dots, which run names have
    active_adapter: str | None = None
    decoding: generation.CompiledDecoding | None = None  # on CUDA: the compiled decoding step, built at load
    parameters: int = 0  # of the base model, counted at load (attached adapters add their own)

    def summary(self) -> str:
        bits = "4-bit" if self.load_in_4bit else str(next(self.model.parameters()).dtype).replace("torch.", "")
        name = DEFAULT_NAME if self.spec in (DEFAULT, DEFAULT_NAME) else self.spec
        base = msg("{name} · {millions:.0f}M parameters · {bits} · max length {length}", name=name,
                   millions=self.parameters / 1e6, bits=bits, length=self.max_seq_length)
        return base if self.decoding is None else joined([base, msg(DECODING[self.decoding.state])], " · ")

    @property
    def model_type(self) -> str | None:
        """The config's model_type (llama, phi3, ...): which family's defaults apply to it."""
        return getattr(self.model.config, "model_type", None)

    @functools.cached_property
    def stops(self) -> frozenset[int]:
        """The tokens that end the assistant's turn."""
        ids = stop_token_ids(self.tokenizer, self.model.generation_config)
        return frozenset([ids] if isinstance(ids, int) else ids)

    @property
    def context(self) -> int:
        """The longest prompt and reply together: the chosen max length, or the model's own where shorter."""
        return min(self.max_seq_length, generation.model_context(self.model))


# What the model's summary says of its decoding step (generation.CompiledDecoding.state).
DECODING = {
    "building": "compiled decoding being built in the background (replies until then run uncompiled, slower)",
    "compiled": "compiled decoding",
    "failed": "uncompiled decoding (building the compiled step failed; the log says why)",
    "stopped": "uncompiled decoding",
}


class ModelManager:
    """Owns the resident model. Every operation takes its turn in one queue, so concurrent requests
    wait in order instead of racing a load against a generation; replies are written together, in
    the batch of `serving` (one step of it a turn); each reply is held to `limits`."""

    def __init__(self, workspace: Workspace, hardware: Hardware | None = None,
                 limits: generation.Limits | None = None, capacity: serving.Capacity | None = None):
        self.workspace = workspace
        self.hardware = hardware or detect()
        self.limits = limits or generation.Limits.from_env()
        self._queue = TurnQueue()
        self._loaded: Loaded | None = None
        self.serving = serving.Scheduler(self._step_turn, lambda loaded: loaded.stops, capacity)

    @contextmanager
    def _step_turn(self):
        with self._queue.turn():
            yield self._loaded

    def _refuse_while_chatting(self, action: str) -> None:
        """A swap or an unload would cut off the replies being written: refused, with the reason."""
        if busy := self.serving.active:
            raise ModelError(msg("Cannot {action} now: {n} replies are being written with the loaded model, and "
                                 "they would be cut off. Try again when they have ended (usually within a minute).",
                                 action=msg(action), n=busy))

    @property
    def loaded(self) -> Loaded | None:
        return self._loaded

    def load(
        self,
        spec: str = DEFAULT,
        load_in_4bit: bool = False,
        max_seq_length: int = 2048,
        trust_remote_code: bool = False,
        anywhere: bool = False,
    ) -> Loaded:
        """Load a model in place of the current one (the owner's action). On any failure the current
        model stays. `anywhere`: any folder (the command line's --model), not only the allowed places."""
        require_owner("load a model")
        if load_in_4bit and (problem := four_bit_problem(self.hardware)):
            raise ModelError(msg("{problem} Turn off 4-bit to load in 16/32-bit (small models such as the default "
                                 "fit easily).", problem=problem))
        if not 128 <= max_seq_length <= 131072:
            raise ModelError(msg("Max sequence length must be between 128 and 131072 tokens (got "
                                 "{max_seq_length}).", max_seq_length=max_seq_length))
        path = resolve_model(spec, self.workspace, trust_remote_code, anywhere=anywhere)
        with self._queue.turn():
            self._refuse_while_chatting("load another model")  # in the turn: no step runs in between
            previous = self._loaded
            if previous is not None and self.hardware.device == "cuda":
                # The GPU holds one model: free the old one first (a failed load then leaves none loaded).
                previous = None
                self._drop()
            try:
                model, tokenizer = self._load_weights(path, load_in_4bit, trust_remote_code)
            except (OSError, ValueError, KeyError) as e:
                raise ModelError(msg("Could not load '{spec}': {problem}", spec=spec, problem=e)) from None
            decoding = generation.compiled_decoding(model, max_seq_length, self.workspace.root / ".cache" / "compile")
            self._loaded = Loaded(spec, path, model, tokenizer, load_in_4bit, max_seq_length, decoding=decoding,
                                  parameters=sum(p.numel() for p in model.parameters()))
            previous = None
            free_memory()
            return self._loaded

    def _load_weights(self, path: Path, load_in_4bit: bool, trust_remote_code: bool):
        """Through transformers, 16-bit and 4-bit alike: on CUDA its static cache runs the decoding step
        as a compiled CUDA graph (faster than unsloth's `for_inference`: bench/RESULTS.md). Training uses
        unsloth, in the worker's own process."""
        from transformers import AutoModelForCausalLM

        kwargs: dict = {"trust_remote_code": trust_remote_code}
        if self.hardware.device == "cpu":
            kwargs["dtype"] = torch.float32
        else:
            kwargs["dtype"] = torch.bfloat16 if self.hardware.bf16 else torch.float16
            kwargs["device_map"] = self.hardware.device
        if load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=kwargs["dtype"]
            )
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        model.eval()
        return model, tokenizer

    def unload(self) -> None:
        """Drop the model and return its memory (GPU memory to the driver's cache is emptied too)."""
        require_owner("unload the model")
        with self._queue.turn():
            self._refuse_while_chatting("unload the model")
            self._drop()

    def _drop(self) -> None:
        """Unload the resident model. A compiled step still being built holds it until the build stops (at
        its next token: compilation itself cannot be cut short), so that wait comes before its memory is freed."""
        if self._loaded is not None and self._loaded.decoding is not None:
            self._loaded.decoding.stop()
            self._loaded.decoding.wait()
        self._loaded = None
        free_memory()

    def free_for_training(self, need_bytes: int = 0) -> str | None:
        """Make room for a training run, whose worker is a process of its own. On a GPU (CUDA, or Apple's
        MPS, whose memory is the host's) the chat model is unloaded: the run needs that memory. On a CPU
        machine it stays loaded while the host's available memory covers `need_bytes` (the plan's
        estimate) with a tenth of the total to spare, so chat keeps working during the run; it is
        unloaded otherwise. Returns a sentence saying the model was unloaded, or None where it stayed."""
        with self._queue.turn():
            if self._loaded is None:
                return None
            if self.hardware.device == "cpu":
                memory = host_memory()
                if memory.available - need_bytes >= memory.total / 10:
                    return None
            what = self._loaded.summary().split(" · ")[0]
            self._loaded = None
            free_memory()
        return msg("The chat model ({model}) was unloaded to give training the GPU's memory; load it again on the "
                   "Model tab when you want to chat." if self.hardware.device != "cpu" else
                   "The chat model ({model}) was unloaded to give training enough memory; load it again on the "
                   "Model tab when you want to chat.", model=what)

    def _require(self) -> Loaded:
        if self._loaded is None:
            raise ModelError(msg("No model is loaded. Load one on the Model tab first."))
        return self._loaded

    def attach_adapter(self, name: str, path: Path, label: str | None = None) -> None:
        """Load a LoRA adapter onto the resident base (no reload of the base) and make it active. One
        trained on another base is refused with the model left as it was; `label` names it there."""
        from peft import PeftModel

        with self._queue.turn():
            loaded = self._require()
            if loaded.decoding is not None:
                loaded.decoding.wait()  # its build traces the modules that peft is about to change
            if name not in loaded.adapters:
                base = loaded.model.get_base_model() if isinstance(loaded.model, PeftModel) else loaded.model
                if problem := adapters.mismatch(base, Path(path)):
                    raise ModelError(
                        msg("'{name}' does not fit the loaded model ({summary}): {problem}. It "
                            "was trained on {path}; load that model on the Model tab first. "
                            "Nothing was changed.", name=label or name, summary=loaded.summary(), problem=problem, path=adapters.trained_on(Path(path)))
                    )
                peft_name = f"adapter_{len(loaded.peft_names)}"
                try:
                    if isinstance(loaded.model, PeftModel):
                        loaded.model.load_adapter(str(path), adapter_name=peft_name)
                    else:
                        loaded.model = PeftModel.from_pretrained(loaded.model, str(path), adapter_name=peft_name)
                except (RuntimeError, ValueError, KeyError, OSError) as e:
                    raise ModelError(
                        msg("The adapter '{name}' does not fit the loaded model ({summary}): it "
                            "was probably trained on another base model. Load that base model "
                            "first. Details: {detail}", name=label or name, summary=loaded.summary(), detail=str(e)[:300])
                    ) from None
                loaded.model.eval()
                loaded.adapters[name] = Path(path)
                loaded.peft_names[name] = peft_name
            loaded.model.set_adapter(loaded.peft_names[name])
            loaded.active_adapter = name

    def use_adapter(self, name: str | None) -> None:
        """Choose the adapter for the next answers; None answers with the base model."""
        with self._queue.turn():
            loaded = self._require()
            if name is not None and name not in loaded.adapters:
                raise ModelError(msg("The adapter '{name}' is not attached; attach it first.", name=name))
            if name is not None:
                loaded.model.set_adapter(loaded.peft_names[name])
            loaded.active_adapter = name

    def stream(
        self,
        messages: list[dict] | str,
        sampling: Sampling,
        adapter: str | None = "active",
        cancel: threading.Event | None = None,
        session: str | None = None, thinking: bool | None = None,
    ) -> Iterator[generation.Reply]:
        """Stream a reply to a conversation (or, a `str`, more of a written-out prompt). `adapter`: "active"
        (the chosen one), None (the base), or an attached name. The reply joins the batch being written
        (serving.Busy, raised here at once, where it is full or `session` asked too often), except on
        CUDA with the compiled decoding step built, where replies take turns with it. `thinking`: a thinking
        model's switch (engine.chat.thinking), None for the template's default."""
        loaded = self._require()
        name = loaded.active_adapter if adapter == "active" else adapter
        if loaded.decoding is not None and loaded.decoding.cache is not None:
            return self._stream_compiled(messages, sampling, name, cancel, thinking)
        rows = self._submit(loaded, [messages], sampling, [name], cancel, session, thinking)
        return (replies[0] for replies in self.serving.replies(rows, loaded.tokenizer))

    def stream_batch(self, conversations: list[list[dict]], sampling: Sampling, adapters: list[str | None],
                     cancel: threading.Event | None = None, session: str | None = None,
                     thinking: bool | None = None) -> Iterator[list[generation.Reply]]:
        """Replies written together, row i by the attached adapter `adapters[i]` (None: the base), all
        admitted to the batch at once or refused (serving.Busy); with a seed each row draws the same
        random numbers as it would alone."""
        loaded = self._require()
        rows = self._submit(loaded, conversations, sampling, adapters, cancel, session, thinking)
        return self.serving.replies(rows, loaded.tokenizer)

    def _submit(self, loaded: Loaded, conversations: list, sampling: Sampling, names: list[str | None],
                cancel: threading.Event | None, session: str | None, thinking: bool | None) -> list[serving.Row]:
        if missing := set(filter(None, names)) - loaded.adapters.keys():
            raise ModelError(msg("The adapter '{name}' is not attached; attach it first.", name=missing.pop()))
        tokenizer = switched(loaded.tokenizer, thinking)
        cancel = cancel or threading.Event()
        asked = sampling.max_new_tokens
        rows, rules = [], serving.model_rules(loaded.model.generation_config)
        for messages, name in zip(conversations, names):
            prompt = generation.fit_prompt(tokenizer, messages, loaded.context,
                                           min(asked, self.limits.max_new_tokens))
            continued = not isinstance(messages, str) and messages[-1]["role"] == "assistant"
            rows.append(serving.Row(prompt, sampling, name, cancel, self.limits, asked, loaded.context,
                                    prefix=messages[-1]["content"] if continued else "", rules=rules))
        return self.serving.submit(rows, session)

    def _stream_compiled(self, messages, sampling: Sampling, name: str | None,
                         cancel: threading.Event | None, thinking: bool | None) -> Iterator[generation.Reply]:
        """One reply at a time through the compiled decoding step (its static cache holds one row); while
        other requests are ahead, items without text say how many (`waiting`, `notice`). The turn ends
        when the generation does, even if the reader stopped reading."""
        ticket = self._queue.join()
        try:
            yield from self._queue.waits(ticket)
            loaded = self._require()

            @contextmanager
            def hold():
                try:
                    with self._adapter_context(loaded, name):
                        yield
                finally:
                    self._queue.leave(ticket)

            yield from generation.stream(loaded.model, switched(loaded.tokenizer, thinking), messages, sampling, cancel,
                                         loaded.decoding.cache, max_length=loaded.context, limits=self.limits,
                                         hold=hold())
        finally:
            self._queue.leave(ticket)

    @contextmanager
    def _adapter_context(self, loaded: Loaded, name: str | None):
        if not loaded.adapters:
            if name is not None:
                raise ModelError(msg("The adapter '{name}' is not attached; attach it first.", name=name))
            yield
            return
        if name is None:
            with loaded.model.disable_adapter():
                yield
            return
        if name not in loaded.adapters:
            raise ModelError(msg("The adapter '{name}' is not attached; attach it first.", name=name))
        previous = loaded.model.active_adapter
        loaded.model.set_adapter(loaded.peft_names[name])
        try:
            yield
        finally:
            loaded.model.set_adapter(previous)

    def generate(self, messages: list[dict], sampling: Sampling, adapter: str | None = "active") -> generation.Reply:
        """The whole reply at once (the last streamed item)."""
        reply = None
        for reply in self.stream(messages, sampling, adapter):
            pass
        return reply
