"""Model families as data: each row of families.yaml says how a family's chat template is recognised,
where its real template text comes from, which text opens and ends an assistant reply (the trained
part of a row, and where a reply stops), whether it thinks, where its system prompt goes and which
layers LoRA adapts by default. Adding a family is adding a row there.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel

HERE = Path(__file__).parent
TEMPLATES = HERE / "family_templates"


class Family(BaseModel, frozen=True):
    key: str
    name: str
    architectures: tuple[str, ...]
    signature: tuple[str, ...]
    template: str
    reply_opens: tuple[str, ...]
    end_of_turn: tuple[str, ...]
    thinking: bool
    system: Literal["system_turn", "first_user", "last_user", "system_tokens", "none"]
    modelfile: str
    target_modules: tuple[str, ...]
    tool_call_id_length: int | None = None  # the template takes tool-call ids of exactly this many letters and digits
    tool_role: bool = True  # False: the template takes no tool turns (tool results go into a user turn)

    def matches(self, template: str) -> bool:
        return all(s in template for s in self.signature)

    def template_text(self) -> str:
        """The family's real chat template (trl's copy of the model's own, or a file kept here)."""
        kind, name = self.template.split(":", 1)
        if kind == "trl":
            import trl

            return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")
        return (TEMPLATES / name).read_text(encoding="utf-8")


@cache
def _table() -> dict:
    return yaml.safe_load((HERE / "families.yaml").read_text(encoding="utf-8"))


@cache
def families() -> tuple[Family, ...]:
    return tuple(Family(**row) for row in _table()["families"])


def by_key(key: str) -> Family:
    return next(f for f in families() if f.key == key)


def of_template(template) -> Family | None:
    """The family whose chat template this is, or None."""
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), "")
    if not template:
        return None
    return next((f for f in families() if f.matches(template)), None)


def default_target_modules() -> list[str]:
    return list(_table()["default_target_modules"])


def target_modules(model_type: str | None) -> list[str]:
    """The layers LoRA adapts by default in a model of this config model_type."""
    family = next((f for f in families() if model_type in f.architectures), None)
    return list(family.target_modules) if family else default_target_modules()


def all_end_of_turn() -> tuple[str, ...]:
    """Every family's end-of-turn strings, for a template of no known family."""
    return tuple(dict.fromkeys(s for f in families() for s in f.end_of_turn))
