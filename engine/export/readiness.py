"""Which export formats can be made on this machine for a run, and for each one that cannot, why (so the
app never offers a choice that is bound to fail)."""

from __future__ import annotations

from engine.export import gguf
from engine.export.catalog import EXPORT_FORMATS, GGUF_ORDER
from engine.export.source import ExportError
from engine.hardware import Hardware
from engine.i18n import msg


def why_not(fmt: str, hardware: Hardware, finished: list[str] = ()) -> str | None:
    """None when `fmt` can be exported here, else the reason and what to do (shown after the format's label).
    `finished`: the formats the run already has finished exports of (a Modelfile goes beside a GGUF file)."""
    if fmt not in EXPORT_FORMATS:
        return msg("'{fmt}' is not an export format: choose one of {formats}.", fmt=fmt, formats=", ".join(EXPORT_FORMATS))
    if fmt == "merged4" and not hardware.can_4bit:
        return msg("Needs an NVIDIA GPU with bitsandbytes, and this machine has {hardware}. Export Merged, "
                   "16-bit instead, or GGUF q4_k_m: a 4-bit file that runs on any CPU.", hardware=hardware.name)
    if fmt == "modelfile" and not set(GGUF_ORDER) & set(finished):
        return msg("Goes beside a GGUF file: export a GGUF (f16, q8_0 or q4_k_m) of this run first.")
    try:
        if fmt.startswith("gguf-"):
            gguf.converter()
        if fmt == "gguf-q4_k_m":
            gguf.quantizer()
    except ExportError as e:
        return e.args[0]
    return None


def unavailable(hardware: Hardware, finished: list[str] = ()) -> dict[str, str]:
    """{format: reason} for every format that cannot be exported here."""
    reasons = {fmt: why_not(fmt, hardware, finished) for fmt in EXPORT_FORMATS}
    return {fmt: reason for fmt, reason in reasons.items() if reason}
