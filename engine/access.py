"""Who may do what, and where models may come from (README, "Sharing the app").

The owner does everything. In demo mode (`WORKBENCH_DEMO=1`) a visitor, anyone not signed in as one of
`WORKBENCH_OWNERS`, chats and compares with the owner's models and runs, and nothing else. The app sets
the caller's role for each request (`acting_as`); the engine calls that change something check it
themselves (`require_owner`), so a direct API call is refused like the hidden button. The command line,
the training worker and tests act as the owner.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from engine.i18n import msg

OWNER, VISITOR = "owner", "visitor"
_role: ContextVar[str] = ContextVar("workbench_role", default=OWNER)


class Refused(ValueError):
    """An action this caller may not take; the message says why and who can."""


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Policy:
    demo: bool = False
    owners: frozenset[str] = frozenset()
    logins: tuple[tuple[str, str], ...] = ()  # Gradio's login page: (user, password)
    model_dirs: tuple[Path, ...] = ()
    oauth: bool = False  # Hugging Face sign-in is set up (a Space with `hf_oauth: true` sets OAUTH_CLIENT_ID)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Policy":
        logins = []
        for pair in _names(env.get("WORKBENCH_AUTH", "")):
            user, sep, password = pair.partition(":")
            if not (sep and user and password):
                raise ValueError(msg("WORKBENCH_AUTH must be user:password pairs separated by commas, e.g. "
                                     "'ann:long-secret,bo:another-secret'."))
            logins.append((user, password))
        dirs = tuple(Path(p).expanduser() for p in env.get("WORKBENCH_MODEL_DIRS", "").split(os.pathsep) if p.strip())
        return cls(demo=env.get("WORKBENCH_DEMO", "").strip().lower() in ("1", "true", "yes", "on"),
                   owners=frozenset(_names(env.get("WORKBENCH_OWNERS", ""))), logins=tuple(logins), model_dirs=dirs,
                   oauth=bool(env.get("OAUTH_CLIENT_ID")))

    @property
    def guarded(self) -> bool:
        """Whether anything stands between the internet and the owner's controls."""
        return self.demo or bool(self.logins)

    def role_of(self, username: str | None) -> str:
        """Outside demo mode everyone who reaches the app (past the login, if one is set) is the owner."""
        if not self.demo:
            return OWNER
        return OWNER if username and username in self.owners else VISITOR


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    token = _role.set(role)
    try:
        yield
    finally:
        _role.reset(token)


def current_role() -> str:
    return _role.get()


def require_owner(action: str) -> None:
    """Refuse `action` (e.g. "start training") unless the caller is the owner."""
    if _role.get() != OWNER:
        raise Refused(msg("This is a demo: only the app's owner can {action}. You can chat with and compare the "
                          "owner's models and runs.", action=msg(action)))


def allowed_model_folder(path: Path, models: Path, policy: Policy | None = None) -> bool:
    """A local model folder may be loaded from the workspace's models/ or a folder the owner lists in
    WORKBENCH_MODEL_DIRS; nothing else (an uploaded file lives elsewhere, so it never runs as a model).
    Judged by the path as written, '..' removed: a link the owner put in models/ counts as inside."""
    policy = policy or Policy.from_env()
    place = Path(os.path.abspath(Path(path).expanduser()))
    return any(place.is_relative_to(os.path.abspath(base)) for base in (models, *policy.model_dirs))


MODEL_PLACES = ("Models load from the workspace's models/ folder, the default model, a Hugging Face id "
                "('owner/name'), or a folder the owner lists in WORKBENCH_MODEL_DIRS.")
