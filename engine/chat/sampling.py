"""Sampling parameters, validated, and the presets kept as YAML data (engine/chat/presets/sampling.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.i18n import msg
from engine.validation import sentences

PRESETS_FILE = Path(__file__).parent / "presets" / "sampling.yaml"

HELP = {
    "temperature": "Randomness: lower is steadier, higher is more creative (0.7-0.9 is typical; 0 means always the most likely word).",
    "top_p": "Pick only from the smallest set of words whose chances add up to this share (0.9 keeps the top 90%).",
    "top_k": "Pick only from this many most likely words (50 is typical; 0 turns it off).",
    "min_p": "Drop words less likely than this share of the most likely one (0.01 is typical; 0 turns it off).",
    "repetition_penalty": "Discourages repeating words: 1.0 is off, 1.1-1.2 is typical.",
    "max_new_tokens": "The longest reply, in tokens (a token is about three quarters of a word).",
    "seed": "The same seed with the same settings gives the same reply; empty means a new one each time.",
}


class SamplingError(ValueError):
    """A sampling value out of range; the message names the field and the allowed range."""


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0, le=1000)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
    max_new_tokens: int = Field(512, ge=1, le=8192)
    seed: int | None = Field(None, ge=0)

    @classmethod
    def parse(cls, **values) -> "Sampling":
        try:
            return cls(**values)
        except ValidationError as e:
            raise SamplingError(sentences(e)) from None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def generate_kwargs(self) -> dict:
        if self.greedy:
            return {"do_sample": False, "repetition_penalty": self.repetition_penalty, "max_new_tokens": self.max_new_tokens}
        return {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p or None,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_new_tokens,
        }


def load_presets(path: Path = PRESETS_FILE) -> dict[str, Sampling]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {name: Sampling.parse(**values) for name, values in data.items()}


def preset(name: str) -> Sampling:
    presets = load_presets()
    if name not in presets:
        raise SamplingError(msg("Unknown preset '{name}'. Choose one of: {presets}.", name=name, presets=', '.join(presets)))
    return presets[name]
