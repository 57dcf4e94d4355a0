"""Each export format, written into `<run>/exports/<format>/` (or a folder of your choice) and verified.

A format is written into a temporary folder beside its target, loaded back and compared with the
in-app model there (verify.py), and only then renamed into place with its `verification.json`: an
interrupted export leaves nothing that looks finished. The free disk space is checked first.

An export never destroys what it did not write: a target folder that holds anything but an earlier
export of the same format is refused before anything is written (engine.files.atomic_dir checks it
again at the rename). A failure of the machine (disk full, no permission, read-only) is said as a
sentence (engine.errors.plain); the exception goes to the log.
"""

from __future__ import annotations

import errno
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.access import require_owner
from engine.export import gguf, llamacpp, verify
from engine.export.catalog import EXPORT_FORMATS, GGUF_ORDER
from engine.export.modelfile import MODELFILE_HEAD, go_template_for, modelfile_text
from engine.export.source import (ExportError, ExportSource, OnProgress, no_progress, open_source, parameter_count,
                                  require_disk)
from engine.errors import plain
from engine.files import MARKER, atomic_dir, mark, read_json, replaceable, write_json, write_text
from engine.hardware import detect, host_memory
from engine.chat.sampling import Sampling, SamplingError
from engine.chat.sampling import preset as sampling_preset
from engine.chat.templates import load_tokenizer, stop_strings, stop_token_ids
from engine.i18n import Message, joined, msg
from engine.workspace import BadName, Workspace

log = logging.getLogger("workbench.export")

@dataclass
class ExportResult:
    format: str
    path: Path
    files: list[str]
    bytes: int
    seconds: float
    report: verify.VerificationReport

    @property
    def passed(self) -> bool:
        return self.report.passed

    def summary(self) -> Message:
        head = msg("{label}: {path} ({size:.1f} MiB, {seconds:.0f} s)", label=msg(EXPORT_FORMATS[self.format].label),
                   path=self.path, size=self.bytes / 2**20, seconds=self.seconds)
        return joined([head, self.report.summary()], "\n")


def export(workspace: Workspace, run, fmt: str, *, out: Path | None = None,
           preset: str = "Leaderboard", system: str = "", gguf_format: str | None = None,
           progress: OnProgress | None = None) -> ExportResult:
    """Write one export of a run (a name in the workspace, or a Run from source.run_folder) and verify it.
    Raises ExportError (with what to do) when it cannot; then nothing new looks finished."""
    require_owner("export")
    progress = progress or no_progress
    if fmt not in EXPORT_FORMATS:
        raise ExportError(msg("Unknown export format '{fmt}'. Choose one of: {formats}.", fmt=fmt,
                              formats=", ".join(EXPORT_FORMATS)))
    try:
        sampling = sampling_preset(preset)
    except SamplingError as e:
        raise ExportError(e.args[0]) from None
    source = open_source(workspace, run)
    started = time.perf_counter()
    if fmt == "modelfile":
        return _modelfile_only(source, out, gguf_format, sampling, preset, system, started)
    if fmt == "merged4" and not detect().can_4bit:
        raise ExportError(msg(
            "A merged 4-bit export needs an NVIDIA GPU with bitsandbytes (4-bit weights are made and loaded there); "
            "this machine has {hardware}. Export 'merged16' instead, or a 4-bit GGUF "
            "('gguf-q4_k_m'), which runs on any CPU.", hardware=detect().name))
    if fmt.startswith("gguf-"):
        gguf.converter()
        if fmt == "gguf-q4_k_m":
            gguf.quantizer()
    target = Path(out).expanduser().resolve() if out else source.exports / fmt
    _check_target(target, fmt)
    progress(0.0, msg("Checking free disk space"))
    base = source.base_path()
    need = (source.adapter / "adapter_model.safetensors").stat().st_size * 2
    need += int(EXPORT_FORMATS[fmt].disk_per_parameter * parameter_count(base))
    require_disk(target.parent, need)
    try:
        with atomic_dir(target) as tmp:
            WRITERS[fmt](source, base, tmp, sampling, preset, system, progress)
            report = _verify(source, fmt, tmp, target, progress)
            files = sorted(p.name for p in tmp.iterdir() if p.name != MARKER)
            size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
            seconds = time.perf_counter() - started
            write_json(tmp / "verification.json", {
                "run": source.name, "format": fmt, "preset": preset, "seconds": round(seconds, 1), "files": files,
                **report.to_dict()})
    except OSError as e:
        failure = _plain_failure(e, fmt, target, need)
        if failure is None:
            raise
        raise failure from None
    progress(1.0, msg("Done"))
    return ExportResult(fmt, target, files + ["verification.json"], size, seconds, report)


def _check_target(target: Path, fmt: str) -> None:
    """Refuse, before anything is written, a target that holds what an export of `fmt` would destroy."""
    if replaceable(target):
        return
    try:  # an export written before atomic_dir marked its folders: claimed by its own list of files
        earlier = read_json(target / "verification.json", {}) if target.is_dir() and not (target / MARKER).exists() else {}
    except ValueError:
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("format") == fmt and isinstance(earlier.get("files"), list):
        mark(target, [*map(str, earlier["files"]), "verification.json"])
        return
    if target.is_dir() and Path.cwd().resolve().is_relative_to(target):
        what = msg("is the folder you are in (or holds it)")
    elif target.exists() and not target.is_dir():
        what = msg("is a file")
    else:
        what = msg("holds files that are not an earlier {fmt} export of this app", fmt=fmt)
    raise ExportError(msg("Nothing was exported: {target} {what}, and an export replaces its folder as a whole. Nothing "
                          "there was changed. Name a new or empty folder instead (it is created), e.g. --out {example}, "
                          "or move those files away.", target=target, what=what, example=target / fmt))


def _plain_failure(e: OSError, fmt: str, target: Path, need: int) -> ExportError | None:
    """A failure of the machine as an ExportError with a sentence (the exception goes to the log), or None."""
    sentence = plain(e)
    if sentence is None:
        return None
    log.info("the %s export into %s failed", fmt, target, exc_info=e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        sentence = joined([sentence, msg("This export needs about {need:.1f} GiB free in {folder}; or export to a "
                                         "folder on another disk.", need=(need * 1.05 + 100 * 2**20) / 2**30,
                                         folder=target.parent)])
    return ExportError(msg("The {label} export was not written: {sentence} Nothing half-written was left in its place.",
                           label=msg(EXPORT_FORMATS[fmt].label), sentence=sentence))


# ---- writers ------------------------------------------------------------------------------------

def _write_adapter(source: ExportSource, base: Path, out: Path, sampling: Sampling, preset: str, system: str,
                   progress: OnProgress) -> None:
    progress(0.05, msg("Copying the adapter"))
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        if (source.adapter / name).exists():
            shutil.copy2(source.adapter / name, out / name)
    _save_tokenizer(source.export_tokenizer(), base, out)


def _merge(source: ExportSource, base: Path, progress: OnProgress):
    """Base + adapter merged into plain weights, in float32 on the CPU (exact), or bfloat16 when float32 would
    not fit in memory."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    progress(0.05, msg("Loading the base model"))
    free_ram = host_memory().available
    dtype = torch.float32 if parameter_count(base) * 4 < 0.7 * free_ram else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    progress(0.15, msg("Merging the adapter into the base"))
    return PeftModel.from_pretrained(model, source.adapter).merge_and_unload()


def _save_merged(model, tokenizer, base: Path, out: Path, sampling: Sampling | None) -> None:
    if sampling is not None:
        model.generation_config.update(**sampling.generate_kwargs())
        model.generation_config.eos_token_id = stop_token_ids(tokenizer, model.generation_config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    _save_tokenizer(tokenizer, base, out)


def _save_tokenizer(tokenizer, base: Path, out: Path) -> None:
    """The tokenizer, with the base model's sentencepiece `tokenizer.model` beside it and tokenizer_config.json
    completed as transformers 4 wrote it. transformers 5 writes only tokenizer.json, while llama.cpp's
    converter reads the vocabulary of Gemma 2, Phi-3 and other sentencepiece families from tokenizer.model,
    learns which tokens are special (the turn markers) from tokenizer_config.json's added_tokens_decoder
    alone, and adds a BOS unless its add_bos_token says not to: without them the file would spell
    `<start_of_turn>` out as text, or put a BOS before Phi-3's prompt that training never had."""
    tokenizer.save_pretrained(out)
    spm = Path(base) / "tokenizer.model"
    if not spm.is_file():
        return
    if not (out / spm.name).exists():
        shutil.copy2(spm, out / spm.name)
    config = read_json(out / "tokenizer_config.json", {})
    config["added_tokens_decoder"] = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                 "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tokenizer.added_tokens_decoder.items())}
    config["add_bos_token"] = bool(getattr(tokenizer, "add_bos_token", True))
    config["add_eos_token"] = bool(getattr(tokenizer, "add_eos_token", False))
    write_json(out / "tokenizer_config.json", config)


def _sixteen_bit(base: Path) -> torch.dtype:
    from transformers import AutoConfig

    return torch.bfloat16 if getattr(AutoConfig.from_pretrained(base), "dtype", None) == torch.bfloat16 else torch.float16


def _to_sixteen_bit(model, dtype: torch.dtype):
    """Matrices in 16-bit; 1-D tensors (norm weights, biases) stay in float32, as llama.cpp's converter keeps
    them: they are a sliver of the size, and rounding a norm weight scales a whole channel at once (on the
    default model, rounding them too made greedy answers drift early from the in-app model's: docs/export.md)."""
    for param in model.parameters():
        param.data = param.data.to(dtype if param.dim() > 1 else torch.float32)
    model.config.dtype = dtype
    return model


def _write_merged16(source: ExportSource, base: Path, out: Path, sampling: Sampling, preset: str, system: str,
                    progress: OnProgress) -> None:
    model = _merge(source, base, progress)
    progress(0.3, msg("Saving 16-bit safetensors"))
    _save_merged(_to_sixteen_bit(model, _sixteen_bit(base)), source.export_tokenizer(), base, out, sampling)
    del model
    verify.free()


def _write_merged4(source: ExportSource, base: Path, out: Path, sampling: Sampling, preset: str, system: str,
                   progress: OnProgress) -> None:
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    staging = out / ".merged16"
    _write_merged16(source, base, staging, sampling, preset, system, progress)
    progress(0.4, msg("Quantising to 4-bit with bitsandbytes"))
    dtype = _sixteen_bit(base)
    model = AutoModelForCausalLM.from_pretrained(staging, device_map="cuda", dtype=dtype, quantization_config=(
        BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=dtype)))
    model.save_pretrained(out)
    _save_tokenizer(source.export_tokenizer(), base, out)
    del model
    shutil.rmtree(staging)
    verify.free()


def _write_gguf(source: ExportSource, base: Path, out: Path, sampling: Sampling, preset: str, system: str,
                progress: OnProgress, quant: str) -> None:
    staging = out / ".merged"
    model = _merge(source, base, progress)
    progress(0.2, msg("Saving the merged model for the converter"))
    tokenizer = source.export_tokenizer()
    _save_merged(model.to(torch.float32), tokenizer, base, staging, None)
    del model
    verify.free()
    file = out / f"{source.name}-{quant}.gguf"
    if quant == "q4_k_m":
        f16 = out / ".f16.gguf"
        gguf.convert(staging, f16, "f16", source.name, progress, 0.25, 0.4)
        gguf.quantize(f16, file, quant, progress, 0.4, 0.5)
        f16.unlink()
    else:
        gguf.convert(staging, file, quant, source.name, progress, 0.25, 0.5)
    shutil.rmtree(staging)
    try:
        _write_modelfile(out, file.name, tokenizer, sampling, preset, system, source)
    except ExportError as e:
        write_text(out / "NO-MODELFILE.txt", str(e) + "\n")


def _gguf_writer(quant: str):
    def write(source, base, out, sampling, preset, system, progress):
        _write_gguf(source, base, out, sampling, preset, system, progress, quant)
    return write


def _write_modelfile(folder: Path, gguf_name: str, tokenizer, sampling: Sampling, preset: str, system: str,
                     source: ExportSource) -> None:
    template = go_template_for(tokenizer, tokenizer.chat_template)
    stops = stop_strings(tokenizer)
    text = modelfile_text(gguf_name, template, stops, sampling, preset, source.max_seq_length, system, source.name)
    write_text(folder / "Modelfile", text)
    (folder / "NO-MODELFILE.txt").unlink(missing_ok=True)


WRITERS = {
    "adapter": _write_adapter,
    "merged16": _write_merged16,
    "merged4": _write_merged4,
    "gguf-f16": _gguf_writer("f16"),
    "gguf-q8_0": _gguf_writer("q8_0"),
    "gguf-q4_k_m": _gguf_writer("q4_k_m"),
}


# ---- verification -------------------------------------------------------------------------------

def _verify(source: ExportSource, fmt: str, folder: Path, target: Path, progress: OnProgress) -> verify.VerificationReport:
    floor = EXPORT_FORMATS[fmt].floor
    if fmt == "merged16" and source.load_in_4bit:
        floor = EXPORT_FORMATS["merged4"].floor  # trained on a 4-bit base, merged into the full-precision one
    report = verify.VerificationReport(fmt, str(target), "identical answers" if floor is None else f"the same next token {floor:.0%} of the time or more",
                           floor)
    progress(0.5, msg("Verifying: answers of the in-app model (base + adapter)"))
    ref = verify.reference(source)
    tokenizer = source.tokenizer()
    progress(0.75, msg("Verifying: loading the export back"))
    if fmt == "adapter":
        model = verify.in_app_model(source, adapter=folder)
        exported_template = _saved_template(folder)
    elif fmt.startswith("merged"):
        from transformers import AutoModelForCausalLM

        if fmt == "merged4":  # loads with the bitsandbytes config saved in it
            model = AutoModelForCausalLM.from_pretrained(folder, device_map="cuda").eval()
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=ref.dtype).to(ref.device).eval()
        exported_template = _saved_template(folder)
    else:
        file = next(folder.glob("*.gguf"))
        meta = gguf.metadata(file)
        report.problems += gguf.tokenizer_check(meta, tokenizer)
        exported_template = meta.get("tokenizer.chat_template")
        model = gguf.load(file, meta, ref.dtype, ref.device)
    progress(0.85, msg("Verifying: comparing greedy answers"))
    report.answers = verify.compare_answers(model, ref, tokenizer)
    del model
    verify.free()
    if fmt.startswith("gguf-"):
        progress(0.9, msg("Verifying: the file run by llama.cpp"))
        report.runtime = llamacpp.check(file, verify.PROMPTS, ref.answers, tokenizer, verify.NEW_TOKENS)
        if report.runtime.answers:
            in_app = verify.in_app_model(source)
            llamacpp.judge(report.runtime, in_app, ref.prompt_ids, tokenizer, verify.NEW_TOKENS)
            del in_app
            verify.free()
    modelfile = folder / "Modelfile"
    report.templates = verify.compare_templates(tokenizer, exported_template, modelfile if modelfile.exists() else None)
    if (folder / "NO-MODELFILE.txt").exists():
        report.notes.append((folder / "NO-MODELFILE.txt").read_text().strip())
    if source.load_in_4bit and not detect().can_4bit:
        report.notes.append(msg("The run was trained on a 4-bit base, which this machine cannot load; the in-app "
                                "reference here is the base in full precision."))
    return report


def _saved_template(folder: Path) -> str | None:
    return load_tokenizer(folder, None).chat_template


def _modelfile_only(source: ExportSource, out: Path | None, gguf_format: str | None, sampling: Sampling, preset: str,
                    system: str, started: float) -> ExportResult:
    if out is not None:
        folder = Path(out).expanduser().resolve()
    else:
        names = [_gguf_export_name(gguf_format)] if gguf_format else GGUF_ORDER
        folder = next((source.exports / n for n in names if list((source.exports / n).glob("*.gguf"))), None)
    files = list(folder.glob("*.gguf")) if folder and folder.is_dir() else []
    if not files:
        raise ExportError(msg("A Modelfile goes beside a GGUF file, and there is none for the run '{name}' in {folder}. "
                              "Export a GGUF first (q4_k_m, q8_0 or f16)." if folder else
                              "A Modelfile goes beside a GGUF file, and there is none for the run '{name}'. "
                              "Export a GGUF first (q4_k_m, q8_0 or f16).", name=source.name, folder=folder))
    existing = folder / "Modelfile"
    if existing.exists() and not existing.read_text(encoding="utf-8", errors="replace").startswith(MODELFILE_HEAD):
        raise ExportError(msg("{path} was not written by this app, so it was left as it was. Move it away, or "
                              "copy the GGUF file into a folder of its own, and export the Modelfile there.", path=existing))
    try:
        _write_modelfile(folder, files[0].name, source.export_tokenizer(), sampling, preset, system, source)
    except OSError as e:
        failure = _plain_failure(e, "modelfile", folder / "Modelfile", 2**20)
        if failure is None:
            raise
        raise failure from None
    report = verify.VerificationReport("modelfile", str(folder / "Modelfile"), "templates render the same", compares_answers=False)
    report.templates = verify.compare_templates(source.tokenizer(), None, folder / "Modelfile")
    seconds = time.perf_counter() - started
    write_json(folder / "modelfile-verification.json", {"run": source.name, "format": "modelfile", "preset": preset,
                                                       **report.to_dict()})
    return ExportResult("modelfile", folder / "Modelfile", ["Modelfile"], (folder / "Modelfile").stat().st_size, seconds,
                  report)


def _gguf_export_name(gguf_format: str) -> str:
    name = gguf_format if gguf_format.startswith("gguf-") else f"gguf-{gguf_format}"
    if name not in GGUF_ORDER:
        raise ExportError(msg("'{name}' is not a GGUF export: choose one of {formats}.", name=gguf_format,
                              formats=", ".join(q[5:] for q in GGUF_ORDER)))
    return name


def list_exports(workspace: Workspace, run: str) -> list[dict]:
    """The finished exports of a run with their verification verdicts (from each verification.json)."""
    try:
        exports = workspace.run_path(run) / "exports"
    except BadName:
        return []
    out = []
    for report in sorted(exports.glob("*/verification.json")):
        try:
            data = read_json(report, {})
        except ValueError:  # cut short by a full disk: shown as not passed
            data = {}
        data = data if isinstance(data, dict) else {}
        out.append({"format": data.get("format", report.parent.name), "path": str(report.parent),
                    "passed": bool(data.get("passed")), "identical": bool(data.get("identical")),
                    "argmax_agreement": data.get("argmax_agreement"), "first_difference": data.get("first_difference"),
                    "files": data.get("files", [])})
    return out
