"""Who may do what, where models and data sets may come from, and a Space's storage (issue 17), at the
engine: these rules hold for every caller, whatever the page shows."""

from __future__ import annotations

import json

import pytest

from engine import access, space
from engine.access import OWNER, VISITOR, Policy, Refused, acting_as
from engine.chat import choices
from engine.chat.models import ModelError, ModelManager, resolve_model
from engine.hardware import detect
from engine.train.config import ConfigError, RunConfig
from engine.train.sources import EXAMPLES, check_sources


def test_demo_mode_makes_everyone_but_the_named_owners_a_visitor():
    policy = Policy.from_env({"WORKBENCH_DEMO": "1", "WORKBENCH_OWNERS": "ann, bo"})
    assert policy.role_of("ann") == OWNER and policy.role_of("bo") == OWNER
    assert policy.role_of("mallory") == VISITOR and policy.role_of(None) == VISITOR
    assert Policy.from_env({}).role_of(None) == OWNER  # no demo mode: whoever reaches the app is its owner


def test_logins_are_read_and_a_malformed_setting_says_how_to_write_it():
    assert Policy.from_env({"WORKBENCH_AUTH": "ann:s3cret,bo:pa:ss"}).logins == (("ann", "s3cret"), ("bo", "pa:ss"))
    with pytest.raises(ValueError, match="user:password pairs"):
        Policy.from_env({"WORKBENCH_AUTH": "ann"})


def test_a_visitor_cannot_load_or_unload_the_model(workspace):
    manager = ModelManager(workspace, detect())
    with acting_as(VISITOR):
        with pytest.raises(Refused, match="only the app's owner can load a model"):
            manager.load("default")
        with pytest.raises(Refused, match="only the app's owner can unload"):
            manager.unload()
    assert manager.loaded is None


def test_a_visitors_chat_choice_never_reaches_the_owners_training_pairs(workspace):
    """The replies' text comes from the page, so a visitor could write any pair: only the owner's are saved."""
    prompt = [{"role": "user", "content": "Who are you?"}]
    with acting_as(VISITOR):
        with pytest.raises(Refused, match="only the app's owner can save a chat choice"):
            choices.save(workspace, prompt, "Anything a visitor typed.", "The model's reply.", "base", "base")
    assert choices.records(workspace) == []
    choices.save(workspace, prompt, "Arr, I be Bess.", "I am a model.", "pirate", "base")
    assert [r["chosen"][0]["content"] for r in choices.records(workspace)] == ["Arr, I be Bess."]


def _remote_code_model(folder):
    """What an attacker uploads: a config whose auto_map points at their own code, which leaves a mark if run."""
    folder.mkdir(parents=True)
    mark = folder / "code-ran"
    (folder / "evil.py").write_text(
        f"open({str(mark)!r}, 'w').write('ran')\nfrom transformers import LlamaConfig\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'llama'\n")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "auto_map": {"AutoConfig": "evil.EvilConfig"}}))
    return mark


def test_uploaded_remote_code_never_runs(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODEL_DIRS", "")  # the owner named no folders
    upload = tmp_path / "gradio-uploads" / "abc123"
    mark = _remote_code_model(upload)
    manager = ModelManager(workspace, detect())
    with pytest.raises(ModelError, match="not a model this app can load"):
        manager.load(str(upload), trust_remote_code=True)
    config = RunConfig(model={"name_or_path": str(upload), "trust_remote_code": True}, dataset=str(EXAMPLES / "data" / "pirate.jsonl"))
    with pytest.raises(ConfigError, match="not a model this app can load"):
        check_sources(workspace, config)
    assert not mark.exists() and manager.loaded is None


def test_refusals_do_not_tell_whether_a_folder_exists(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODEL_DIRS", "")
    (tmp_path / ".ssh").mkdir()
    messages = []
    for folder in (tmp_path / ".ssh", tmp_path / "no-such-folder"):
        with pytest.raises(ModelError) as refused:
            resolve_model(str(folder), workspace)
        messages.append(str(refused.value).replace(str(folder), "FOLDER"))
        config = RunConfig(dataset=str(folder / "rows.csv"))
        (folder / "rows.csv").write_text("prompt,response\nhi,hello\n") if folder.exists() else None
        with pytest.raises(ConfigError) as refused:
            check_sources(workspace, config)
        messages.append(str(refused.value).replace(str(folder), "FOLDER"))
    assert messages[0] == messages[2] and messages[1] == messages[3]
    assert "WORKBENCH_MODEL_DIRS" in messages[0] and "Dataset tab" in messages[1]


def test_folders_the_owner_names_and_the_workspace_load(workspace, tmp_path, monkeypatch, tiny_model_path):
    monkeypatch.setenv("WORKBENCH_MODEL_DIRS", str(tiny_model_path.parent))
    assert resolve_model(str(tiny_model_path), workspace) == tiny_model_path
    (workspace.models / "mine").symlink_to(tiny_model_path, target_is_directory=True)
    monkeypatch.setenv("WORKBENCH_MODEL_DIRS", "")
    assert resolve_model("mine", workspace) == workspace.models / "mine"
    with pytest.raises(ModelError, match="not a model this app can load"):
        resolve_model("mine/../../../" + tiny_model_path.name, workspace)
    assert resolve_model(str(tiny_model_path), workspace, anywhere=True) == tiny_model_path  # the command line


def test_a_space_keeps_its_workspace_and_caches_on_persistent_storage(tmp_path):
    env = {"SPACE_ID": "ann/workbench", "SYSTEM": "spaces", "WORKBENCH_PERSISTENT_DIR": str(tmp_path)}
    assert space.prepare(env) == ()
    assert env["WORKBENCH_HOME"] == str(tmp_path / "workbench") and env["HF_HOME"] == str(tmp_path / ".huggingface")
    bare = {"SPACE_ID": "ann/workbench", "WORKBENCH_PERSISTENT_DIR": str(tmp_path / "absent")}
    assert space.prepare(bare) == (space.NO_STORAGE,) and "WORKBENCH_HOME" not in bare
    assert space.prepare({}) == () and access.current_role() == OWNER  # a local run, as the owner


def test_a_visitor_cannot_train_export_or_push(workspace, tmp_path):
    from engine.export.exporter import export
    from engine.export.hub import push
    from engine.train import launch

    config = RunConfig(dataset=str(EXAMPLES / "data" / "pirate.jsonl"))
    with acting_as(VISITOR):
        with pytest.raises(Refused, match="start training"):
            launch.start(workspace, ModelManager(workspace, detect()), config)
        with pytest.raises(Refused, match="only the app's owner can export"):
            export(workspace, "any-run", "adapter")
        with pytest.raises(Refused, match="push"):
            push(tmp_path, "ann/model", token="hf_x")
    assert not any(workspace.runs.iterdir())
