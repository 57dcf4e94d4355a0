import gc
import threading
import weakref

import pytest

from engine.default_model import NAME, ensure_default_model
from engine.hardware import detect
from engine.chat.models import ModelError, ModelManager, resolve_model
from engine.chat.sampling import preset

PRECISE = preset("Precise").model_copy(update={"max_new_tokens": 12})


@pytest.fixture
def manager(workspace):
    return ModelManager(workspace)


def test_hardware_on_this_machine_is_cpu_with_the_transformers_backend():
    hw = detect()
    assert hw.device == "cpu" and hw.backend == "transformers" and not hw.can_4bit
    assert hw.total_bytes > hw.free_bytes() > 0
    assert "backend: transformers" in hw.summary()


def test_default_model_is_converted_once(default_model_path, tmp_path):
    target = tmp_path / "models"
    (target).mkdir()
    (target / NAME).symlink_to(default_model_path, target_is_directory=True)
    before = (default_model_path / "model.safetensors").stat().st_mtime_ns
    assert ensure_default_model(target) == target / NAME
    assert (default_model_path / "model.safetensors").stat().st_mtime_ns == before


def test_default_tokenizer_ends_turns_with_im_end(manager):
    loaded = manager.load("default")
    tok = loaded.tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    assert loaded.model.generation_config.eos_token_id == tok.eos_token_id


def test_a_folder_that_is_not_a_model_is_refused_and_the_model_kept(manager, tmp_path):
    manager.load("default")
    kept = manager.loaded
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        manager.load(str(tmp_path / "notes"))
    assert manager.loaded is kept


def test_four_bit_on_cpu_says_what_to_do(manager):
    manager.load("default")
    kept = manager.loaded
    with pytest.raises(ModelError, match="needs an NVIDIA GPU.*Turn off 4-bit"):
        manager.load("default", load_in_4bit=True)
    assert manager.loaded is kept


def test_an_unknown_hub_id_names_it(workspace, monkeypatch):
    # The Hub cannot be reached from here: its answer for a missing repository is simulated at the network boundary.
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    import httpx

    def missing(repo_id, **kwargs):
        url = f"https://huggingface.co/api/models/{repo_id}"
        raise RepositoryNotFoundError(f"404 {repo_id}", response=httpx.Response(404, request=httpx.Request("GET", url)))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ModelError, match="no model 'nobody/nothing-here' on the Hugging Face Hub"):
        resolve_model("nobody/nothing-here", workspace)


def test_offline_hub_download_explains_itself(workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="cannot be reached"):
        resolve_model("unsloth/Qwen3-8B", workspace)


def test_text_that_is_no_model_name(workspace):
    with pytest.raises(ModelError, match="not a model this app can load"):
        resolve_model("what is this?", workspace)


def test_bad_max_length_is_refused(manager):
    with pytest.raises(ModelError, match="between 128 and 131072"):
        manager.load("default", max_seq_length=10)


def test_unload_really_frees_the_model(manager):
    manager.load("default")
    ref = weakref.ref(manager.loaded.model)
    manager.unload()
    gc.collect()
    assert ref() is None and manager.loaded is None
    with pytest.raises(ModelError, match="No model is loaded"):
        manager.generate([{"role": "user", "content": "hi"}], PRECISE)


def test_loading_another_model_releases_the_first(manager, tiny_model_path):
    manager.load("default")
    ref = weakref.ref(manager.loaded.model)
    manager.load(str(tiny_model_path))
    gc.collect()
    assert ref() is None and manager.loaded.path == tiny_model_path


def test_concurrent_generate_and_reload_do_not_race(manager, tiny_model_path):
    manager.load(str(tiny_model_path))
    errors, replies = [], []

    def chat():
        try:
            replies.append(manager.generate([{"role": "user", "content": "hello"}], PRECISE))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=chat) for _ in range(3)]
    threads.append(threading.Thread(target=lambda: manager.load(str(tiny_model_path))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(replies) == 3
    assert all(r.stats.new_tokens > 0 for r in replies)


REMOTE_CODE = """from transformers import LlamaConfig, LlamaForCausalLM


class RemoteConfig(LlamaConfig):
    model_type = "workbench-remote"


class RemoteForCausalLM(LlamaForCausalLM):
    config_class = RemoteConfig
"""


def test_trust_remote_code_is_off_unless_asked_and_then_reaches_the_loader(manager, tiny_model_path, tmp_path):
    """A model folder whose config names its own code (as models with custom code on the Hub do), made
    from the tiny llama: it loads only with "trust remote code", and then runs that code."""
    import json
    import shutil

    folder = shutil.copytree(tiny_model_path, tmp_path / "remote")
    (folder / "remote_llama.py").write_text(REMOTE_CODE)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="workbench-remote", auto_map={"AutoConfig": "remote_llama.RemoteConfig",
                                                           "AutoModelForCausalLM": "remote_llama.RemoteForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(ModelError, match="contains custom code"):
        manager.load(str(folder))
    assert manager.loaded is None
    loaded = manager.load(str(folder), trust_remote_code=True)
    assert type(loaded.model).__name__ == "RemoteForCausalLM"
    assert manager.generate([{"role": "user", "content": "hi"}], PRECISE).stats.new_tokens > 0


def test_host_memory_is_psutils_reading_in_gib_on_screen():
    import psutil

    from engine.hardware import GiB, host_memory

    hw = detect()
    with open("/proc/meminfo") as f:
        kernel = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    assert host_memory().total == psutil.virtual_memory().total == kernel["MemTotal"] == hw.total_bytes
    assert abs(hw.free_bytes() - psutil.virtual_memory().available) < 0.5 * GiB
    assert abs(hw.free_bytes() - kernel["MemAvailable"]) < 0.5 * GiB
    assert f"of {hw.total_bytes / GiB:.1f} GiB free" in hw.summary() and abs(hw.free_gib() - hw.free_bytes() / GiB) < 0.5


def test_free_for_training_keeps_the_chat_model_on_a_cpu_with_room(manager):
    manager.load("default")
    kept = manager.loaded
    assert manager.free_for_training(need_bytes=10**8) is None
    assert manager.loaded is kept


def test_free_for_training_unloads_where_the_cpu_has_no_room(manager):
    from engine.hardware import host_memory

    manager.load("default")
    ref = weakref.ref(manager.loaded.model)
    said = manager.free_for_training(need_bytes=host_memory().total)
    gc.collect()
    assert ref() is None and manager.loaded is None
    assert "was unloaded to give training enough memory" in said and "Model tab" in said
    assert manager.free_for_training() is None  # nothing left to free


def test_free_for_training_unloads_on_a_gpu(manager):
    # No GPU here: the manager is told it runs on one (the model itself stays on the CPU).
    import dataclasses

    manager.load("default")
    ref = weakref.ref(manager.loaded.model)
    manager.hardware = dataclasses.replace(manager.hardware, device="cuda")
    said = manager.free_for_training()
    gc.collect()
    assert ref() is None and manager.loaded is None and "the GPU's memory" in said
