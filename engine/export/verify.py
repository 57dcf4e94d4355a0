"""Check an export against the in-app model (base + adapter) before calling it done.

Answers: the same fixed prompts, 64 greedy tokens each, from the in-app model and from the export
loaded back; "identical" or "differs from token k", with both texts. Quantised exports are also
scored teacher-forced: the share of the in-app model's tokens that the export also ranks first
(argmax agreement), held against a floor per format.

GGUF files are also run by llama.cpp itself where its runtime is built (engine/export/llamacpp.py).

Templates: one conversation rendered with the training template, the exported tokenizer's
template and the Modelfile's Go template (rendered here as Ollama would), with a diff if any.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from engine.chat.templates import stop_token_ids
from engine.export.gotemplate import render_go
from engine.export.llamacpp import RuntimeCheck
from engine.export.modelfile import accepts, ollama_data, read_modelfile, render_for_ollama, render_jinja
from engine.export.source import ExportSource
from engine.hardware import free_memory as free  # verify.free(): the exporters call it between loads

PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain in two sentences what a neural network is.",
)
NEW_TOKENS = 64
CONVERSATION = [
    {"role": "user", "content": "Hello! Who are you?"},
    {"role": "assistant", "content": "I am your assistant."},
    {"role": "user", "content": "Tell me a fact about the sea."},
]
EXAMPLE_SYSTEM = "You are a helpful assistant who answers briefly."


@dataclass
class Answer:
    prompt: str
    reference: str
    exported: str
    identical: bool
    first_difference: int | None  # index of the first differing token, None when identical
    argmax_agreement: float  # share of the reference tokens the export ranks first, teacher-forced
    reference_tokens: int

    def line(self) -> str:
        if self.identical:
            return f"'{self.prompt}': identical ({self.reference_tokens} tokens)"
        return (f"'{self.prompt}': the same for the first {self.first_difference} tokens, then different words\n"
                f"    in-app: {self.reference!r}\n    export: {self.exported!r}")


@dataclass
class TemplateRender:
    name: str
    text: str
    same: bool
    diff: str = ""


@dataclass
class VerificationReport:
    format: str
    path: str
    expectation: str  # "identical" or "agreement >= floor"
    floor: float | None = None
    compares_answers: bool = True
    answers: list[Answer] = field(default_factory=list)
    templates: list[TemplateRender] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runtime: RuntimeCheck | None = None  # a GGUF run by llama.cpp itself (engine/export/llamacpp.py)

    @property
    def identical(self) -> bool:
        return bool(self.answers) and all(a.identical for a in self.answers)

    @property
    def argmax_agreement(self) -> float:
        total = sum(a.reference_tokens for a in self.answers)
        return sum(a.argmax_agreement * a.reference_tokens for a in self.answers) / total if total else 0.0

    @property
    def first_difference(self) -> int | None:
        found = [a.first_difference for a in self.answers if a.first_difference is not None]
        return min(found) if found else None

    @property
    def passed(self) -> bool:
        if self.problems or not all(t.same for t in self.templates):
            return False
        # A quantised file's replies may part from the in-app model's early and still meet its floor, which
        # only the teacher-forced check measures; llama.cpp must then run it and end each turn.
        if self.runtime is not None and not (self.runtime.passed if self.floor is None else self.runtime.runs_cleanly):
            return False
        if not self.compares_answers:
            return True
        if self.floor is None:
            return self.identical
        return self.argmax_agreement >= self.floor

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"Verification of {self.format}: {verdict} (expected: {self.expectation})"]
        if self.answers:
            first = self.first_difference
            need = "" if self.floor is None else f" ({self.floor:.0%} needed" + (
                ", so the difference is allowed)" if self.passed and not self.identical else ")")
            lines.append(("transformers: " if self.runtime is not None else "") + f"Answers ({NEW_TOKENS} tokens, always the most likely next one): "
                         + ("identical on every prompt" if self.identical
                            else f"the same for the first {first} tokens, then they part ways")
                         + f"; the export picks the in-app model's next token {self.argmax_agreement:.1%} of the time{need}")
            lines += ["  " + a.line() for a in self.answers]
        if self.runtime is not None:
            lines += self.runtime.lines(NEW_TOKENS, near_ties=self.floor is None)
        for t in self.templates:
            lines.append(f"Template, {t.name}: " + ("renders the same as training" if t.same else "DIFFERS:\n" + t.diff))
        lines += [f"Problem: {p}" for p in self.problems]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "identical": self.identical,
                "argmax_agreement": self.argmax_agreement, "first_difference": self.first_difference}


@dataclass
class Reference:
    """The in-app model's greedy answers to PROMPTS, and the prompt token ids they answer."""
    prompt_ids: list[list[int]]
    answers: list[list[int]]
    dtype: torch.dtype
    device: str


def in_app_model(source: ExportSource, adapter: Path | None = None):
    """Base + adapter loaded the way the Chat tab loads them (engine.chat.models.ModelManager)."""
    from engine.hardware import detect
    from engine.chat.models import ModelManager

    hardware = detect()
    manager = ModelManager(source.workspace, hardware)
    manager.load(source.base_spec, load_in_4bit=source.load_in_4bit and hardware.can_4bit,
                 max_seq_length=max(128, source.max_seq_length))
    manager.attach_adapter(source.name, adapter or source.adapter)
    return manager.loaded.model


REFERENCE_FILE = "in-app-reference.json"


def reference(source: ExportSource) -> Reference:
    """The in-app model's answers, computed once per adapter version and kept beside the exports
    (exports/in-app-reference.json), so that several exports of a run share them."""
    import json

    from engine.files import read_json, write_json
    from engine.hardware import detect

    tokenizer = source.tokenizer()
    adapter = (source.adapter / "adapter_model.safetensors").stat()
    base = source.base_path()
    key = json.loads(json.dumps({
        "adapter": [adapter.st_mtime_ns, adapter.st_size], "base": str(base),
        "base_config": (base / "config.json").stat().st_mtime_ns, "load_in_4bit": source.load_in_4bit,
        "device": detect().device, "prompts": PROMPTS, "new_tokens": NEW_TOKENS, "stops": stop_token_ids(tokenizer)}))
    cached = read_json(source.exports / REFERENCE_FILE, {}) or {}
    if cached.get("key") == key:
        return Reference(cached["prompt_ids"], cached["answers"], getattr(torch, cached["dtype"]), cached["device"])
    prompt_ids = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                return_dict=True)["input_ids"] for p in PROMPTS]
    model = in_app_model(source)
    # stopped where chat stops: a model whose config names only <eos> still ends its turn on <end_of_turn>
    stops = stop_token_ids(tokenizer, model.generation_config)
    ref = Reference(prompt_ids, greedy(model, prompt_ids, stops), next(model.parameters()).dtype, str(model.device))
    del model
    free()
    write_json(source.exports / REFERENCE_FILE, {"key": key, "prompt_ids": ref.prompt_ids, "answers": ref.answers,
                                                "dtype": str(ref.dtype).replace("torch.", ""), "device": ref.device})
    return ref


@torch.no_grad()
def greedy(model, prompt_ids: list[list[int]], stops: list[int] | None = None) -> list[list[int]]:
    """Plain greedy decoding: a fresh generation config, so an export's sampling preset plays no part.
    It ends on `stops` (the ids chat stops on: stop_token_ids) or else the model's own eos."""
    from transformers import GenerationConfig

    eos = stops or model.generation_config.eos_token_id
    model.generation_config = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos,
                                               pad_token_id=eos[0] if isinstance(eos, list) else eos)
    out = []
    for ids in prompt_ids:
        x = torch.tensor([ids], device=model.device)
        y = model.generate(x, attention_mask=torch.ones_like(x))
        out.append(_cut(y[0, len(ids):].tolist(), eos))
    return out


def _cut(tokens: list[int], eos) -> list[int]:
    """Up to and including the first end token (generate pads finished rows with it)."""
    stops = set(eos if isinstance(eos, list) else [eos])
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[: i + 1]
    return tokens


@torch.no_grad()
def argmax_agreement(model, prompt_ids: list[int], answer: list[int]) -> float:
    if not answer:
        return 1.0
    x = torch.tensor([prompt_ids + answer], device=model.device)
    logits = model(x).logits[0, len(prompt_ids) - 1: -1]
    return (logits.argmax(-1).cpu() == torch.tensor(answer)).float().mean().item()


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_answers(model, ref: Reference, tokenizer) -> list[Answer]:
    exported = greedy(model, ref.prompt_ids, stop_token_ids(tokenizer, model.generation_config))
    out = []
    for prompt, ids, want, got in zip(PROMPTS, ref.prompt_ids, ref.answers, exported):
        k = first_difference(want, got)
        out.append(Answer(
            prompt=prompt,
            reference=tokenizer.decode(want, skip_special_tokens=True),
            exported=tokenizer.decode(got, skip_special_tokens=True),
            identical=k is None,
            first_difference=k,
            argmax_agreement=argmax_agreement(model, ids, want),
            reference_tokens=len(want),
        ))
    return out


def _diff(a: str, b: str, name: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        "training template", name))


def compare_templates(tokenizer, exported_template: str | None, modelfile: Path | None = None) -> list[TemplateRender]:
    """One conversation rendered with the training template and with each exported one.

    With a Modelfile SYSTEM, Ollama puts that system prompt first, so the training render gets it too."""
    system = read_modelfile(modelfile)["system"] if modelfile else ""
    messages = [{"role": "system", "content": system or EXAMPLE_SYSTEM}] + CONVERSATION
    if not accepts(tokenizer, tokenizer.chat_template, messages):  # a template without a system role (Gemma 2)
        messages = CONVERSATION
    want = render_jinja(tokenizer, tokenizer.chat_template, messages)
    renders = [TemplateRender("training template", want, True)]
    if exported_template is not None:
        got = render_jinja(tokenizer, exported_template, messages)
        renders.append(TemplateRender("exported tokenizer's template", got, got == want, _diff(want, got, "exported")))
    if modelfile is not None:
        go = read_modelfile(modelfile)["template"]
        prompt = render_for_ollama(tokenizer, tokenizer.chat_template, messages)
        got = render_go(go, ollama_data(messages, system))
        renders.append(TemplateRender("Modelfile TEMPLATE (as Ollama renders it)", got, got == prompt,
                                      _diff(prompt, got, "Modelfile")))
        if not system:
            bare_want = render_for_ollama(tokenizer, tokenizer.chat_template, CONVERSATION)
            bare = render_go(go, ollama_data(CONVERSATION))
            renders.append(TemplateRender("Modelfile TEMPLATE, chat without a system prompt", bare, bare == bare_want,
                                          _diff(bare_want, bare, "Modelfile")))
    return renders
