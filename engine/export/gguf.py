"""GGUF files through llama.cpp's own tools, installed at `make` time from the llama-cpp-python
source distribution (tools/llama_cpp.py): `convert_hf_to_gguf.py` with its matching gguf-py for
f16 and q8_0, and `llama-quantize` (built with cmake, optional) for q4_k_m. Nothing is downloaded
at export time. Files are read back with transformers (`gguf_file=`) to be verified.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from engine.errors import plain
from engine.i18n import msg
from engine.export.source import ExportError, OnProgress

QUANTS = ("f16", "q8_0", "q4_k_m")
# tools/llama_cpp.py installs here (the same rule is written there).
TOOLS = Path(os.environ.get("WORKBENCH_LLAMA_CPP") or Path(__file__).resolve().parents[2] / ".cache" / "llama.cpp")
_PERCENT = re.compile(r"(\d+)%\|")
_ERRNO = re.compile(r"\[Errno (\d+)\]")


def converter() -> Path:
    script = TOOLS / "src" / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise ExportError(
            "GGUF export needs llama.cpp's converter, which is not installed on this machine. Install it with "
            "`make gguf-tools` (or: python tools/llama_cpp.py converter), then export again."
        )
    return script


def quantizer() -> Path:
    binary = TOOLS / "bin" / "llama-quantize"
    if not binary.is_file():
        raise ExportError(
            "q4_k_m needs llama.cpp's llama-quantize, which is not built on this machine. Build it once with "
            "`make gguf-quantizer` (or: python tools/llama_cpp.py quantizer, a few minutes once; it needs "
            "cmake and a C++ compiler), then export again. f16 and q8_0 work without it."
        )
    return binary


def _run(command: list[str], what: str, progress: OnProgress, start: float, end: float) -> None:
    """Run a tool, turning its tqdm percentages into progress and its failure into a plain message."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use the gguf-py it came with, not the installed one
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    tail: list[str] = []
    buffer, shown = b"", -1
    while chunk := proc.stdout.read1(4096):
        buffer += chunk
        *lines, buffer = re.split(rb"[\r\n]", buffer)
        for line in (x.decode("utf-8", "replace") for x in lines if x.strip()):
            tail = (tail + [line])[-15:]
            if (match := _PERCENT.search(line)) and int(match.group(1)) // 10 > shown:
                shown = int(match.group(1)) // 10
                progress(start + (end - start) * shown / 10, what)
    if proc.wait() != 0:
        found = _ERRNO.search("\n".join(tail))  # the tool died of a machine failure: say that as a sentence
        sentence = plain(OSError(int(found.group(1)), "")) if found else None
        if sentence:
            raise ExportError(msg("{what} failed: {sentence}", what=what, sentence=sentence))
        raise ExportError(msg("{what} failed (exit code {code}). The tool's last lines:\n{lines}", what=what,
                              code=proc.returncode, lines="\n".join(tail)))


def convert(model_dir: Path, out: Path, outtype: str, name: str, progress: OnProgress, start: float, end: float) -> None:
    """A merged model folder (safetensors + tokenizer) to one GGUF file of type f16, q8_0 or f32."""
    _run([sys.executable, str(converter()), str(model_dir), "--outfile", str(out), "--outtype", outtype,
          "--model-name", name], msg("Converting to GGUF {type}", type=outtype), progress, start, end)


def quantize(source: Path, out: Path, kind: str, progress: OnProgress, start: float, end: float) -> None:
    _run([str(quantizer()), str(source), str(out), kind.upper(), str(os.cpu_count() or 2)],
         msg("Quantising to {kind}", kind=kind), progress, start, end)


def metadata(path: Path) -> dict:
    """The tokenizer fields and tensor types of a GGUF file (read with the `gguf` package)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items()
              if k.startswith(("tokenizer.", "general.")) or k.endswith(".attention.key_length")}
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    fields["tensor_types"] = types
    return fields


def tokenizer_check(meta: dict, tokenizer) -> list[str]:
    """What llama.cpp would do differently from the training tokenizer (`meta`: the file's `metadata`):
    vocabulary, end of turn, BOS."""
    problems = []
    tokens = meta.get("tokenizer.ggml.tokens") or []
    expected = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if tokens[: len(expected)] != expected:
        wrong = next((i for i, (a, b) in enumerate(zip(tokens, expected)) if a != b), min(len(tokens), len(expected)))
        problems.append(msg("The GGUF vocabulary differs from the tokenizer's from token id {id}.", id=wrong))
    eos = meta.get("tokenizer.ggml.eos_token_id")
    if eos != tokenizer.eos_token_id:
        problems.append(msg("The GGUF end-of-text token is id {eos}; the tokenizer's is {id} ({token}), so replies "
                            "may not stop.", eos=eos, id=tokenizer.eos_token_id, token=tokenizer.eos_token))
    adds_bos = bool(tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id])
    if bool(meta.get("tokenizer.ggml.add_bos_token", False)) != adds_bos:
        problems.append(msg("llama.cpp would not add the start token ({token}) that training added.", token=tokenizer.bos_token)
                        if adds_bos else
                        msg("llama.cpp would add a start token ({token}) that training did not add.", token=tokenizer.bos_token))
    return problems


def load(path: Path, meta: dict, dtype, device: str):
    """The GGUF's weights in transformers (dequantised), to compare answers with the in-app model
    (`meta`: the file's `metadata`, read once: the reader parses the whole vocabulary each time)."""
    from transformers import AutoModelForCausalLM

    # transformers' GGUF reader leaves some architectures' head_dim (Qwen3's) at the config class's default
    # instead of the file's attention.key_length; the file's own value is passed in
    head_dim = meta.get(f"{meta.get('general.architecture')}.attention.key_length")
    extra = {"head_dim": int(head_dim)} if head_dim else {}
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype, **extra)
    return model.to(device).eval()
