"""Push a finished export folder to the Hugging Face Hub: private unless asked otherwise.

The token comes from the caller (a password field) or the HF_TOKEN environment variable. It is
handed to huggingface_hub and nowhere else: never logged, never written into a file, and taken out
of any error message before that message goes anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.access import require_owner
from engine.export.source import ExportError, OnProgress, no_progress
from engine.i18n import msg
from engine.files import MARKER


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _valid_repo_id(repo_id: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def push(folder: Path, repo_id: str, token: str | None = None, private: bool = True,
         progress: OnProgress | None = None) -> str:
    """Upload every file of an export folder to a model repository (created if missing). Returns its URL."""
    require_owner("push to the Hugging Face Hub")
    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    progress = progress or no_progress
    folder = Path(folder)
    token = (token or os.environ.get("HF_TOKEN") or "").strip()
    repo_id = (repo_id or "").strip()
    if not token:
        raise ExportError(msg("Pushing to the Hugging Face Hub needs a token with write access: paste one in the token "
                              "field or set the HF_TOKEN environment variable (huggingface.co/settings/tokens)."))
    if "/" not in repo_id or not _valid_repo_id(repo_id):  # an owner is asked for: it says where the model goes
        raise ExportError(msg("'{repo}' is not a Hub repository name: write it as 'your-name/model-name' (letters, "
                              "digits, '-', '_' and '.'; no '--' or '..').", repo=repo_id))
    if not (folder / "verification.json").is_file():
        raise ExportError(msg("{folder} is not a finished export (it has no verification.json). Export first, then push.",
                              folder=folder))
    api = HfApi(token=token)
    try:
        progress(0.05, f"Creating {'private' if private else 'public'} repository {repo_id}")
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        progress(0.2, f"Uploading {folder.name} to {repo_id}")
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model", ignore_patterns=[MARKER],
                          commit_message=f"Upload the {folder.name} export from LoRA Workbench")
    except OfflineModeIsEnabled:
        raise ExportError("The Hugging Face Hub is switched off on this machine (HF_HUB_OFFLINE is set); unset it "
                          "to push.") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        advice = {401: " The token was refused: check it, or make a new one with write access.",
                  403: " The token may not write to this repository: use a token with write access, or a "
                       "repository under your own name."}.get(status, "")
        raise ExportError(_scrub(f"The Hub refused the push ({status}).{advice} Details: {e}", token)[:800]) from None
    except (OSError, ValueError, httpx.HTTPError) as e:
        raise ExportError(_scrub(f"Could not reach the Hugging Face Hub: {e}", token)[:800]) from None
    progress(1.0, "Pushed")
    return str(url)
