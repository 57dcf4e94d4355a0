"""What a run trains on, checked before Start: its data set and its model. The app takes data sets
only from the workspace's datasets/ and from the examples shipped in examples/ (a headless run may
name any file)."""

from __future__ import annotations

from pathlib import Path

from engine.access import allowed_model_folder
from engine.i18n import msg
from engine.train.config import ConfigError, RunConfig
from engine.workspace import BadName, Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def absolute_dataset(config: RunConfig) -> RunConfig:
    """A data set given as a relative path is made absolute, so the run folder works from anywhere."""
    path = Path(config.dataset).expanduser()
    if path.exists() and not path.is_absolute():
        return config.model_copy(update={"dataset": str(path.resolve())})
    return config


def check_sources(workspace: Workspace, config: RunConfig) -> RunConfig:
    """The config, once its data set is known to be a saved one, a file in the workspace's datasets/
    or an example shipped in examples/, and its model to be the default, a model folder or a Hub id
    (which the worker downloads)."""
    from engine.chat.models import DEFAULT, DEFAULT_NAME, HUB_ID, ModelError, resolve_model

    ref = config.dataset.strip()
    try:
        saved = (workspace.dataset_path(ref) / "data.jsonl").is_file()
    except BadName:  # not a name, so a path
        saved = False
    if not saved:
        path = Path(ref).expanduser().resolve()
        # Outside the workspace is refused before anything is looked at, so the answer never tells
        # whether a file exists there.
        if not any(path.is_relative_to(base.resolve()) for base in (workspace.datasets, EXAMPLES)):
            raise ConfigError(msg("The data set '{ref}' is not one of this workspace's data sets. Import the file "
                                  "on the Dataset tab (or with `python -m engine data import FILE --name NAME`), "
                                  "then pick it by its name.", ref=ref))
        if not (path.is_file() or (path / "data.jsonl").is_file()):
            raise ConfigError(msg("The data set '{ref}' does not exist in this workspace. Pick a saved data set, "
                                  "or import the file on the Dataset tab first.", ref=ref))
    _check_preference(workspace, config)
    spec = config.model.name_or_path.strip()
    if spec in (DEFAULT, DEFAULT_NAME) or (HUB_ID.match(spec) and not _folder(spec, workspace)):
        return config  # the default, or a Hub id the worker downloads
    try:
        resolve_model(spec, workspace)  # a folder is only checked here; nothing loads
    except ModelError as e:
        raise ConfigError(str(e)) from None
    return config


def _check_preference(workspace: Workspace, config: RunConfig) -> None:
    """The run a preference run starts from has an adapter on this model, and the runs whose votes it
    takes exist."""
    from engine.train.methods import starting_adapter
    from engine.train.runs import load_run

    starting_adapter(workspace, config)
    for name in config.preference.votes_from:
        try:
            load_run(workspace, name)
        except ValueError as e:  # no such run, or no run name
            raise ConfigError(str(e)) from None


def _folder(spec: str, workspace: Workspace) -> bool:
    """Whether `spec` names a model folder in a place models may be loaded from."""
    return any(allowed_model_folder(p, workspace.models) and p.is_dir()
               for p in (workspace.models / spec, Path(spec).expanduser()))
