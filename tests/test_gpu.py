"""The GPU path end to end on a CUDA GPU: 4-bit load and chat with compiled decoding, a worker run
with the unsloth backend, Stop and Resume, merged 16-bit and 4-bit exports with their after-export
check, chat with the trained adapter on a 4-bit base. Run on the GPU machine
(docs/gpu.md says how); skipped, with this reason, wherever there is no CUDA.

No weights reach the GPU machine, so the models are random-init llamas of real shapes built there
(bench/gpu_models.py), with a word-level ChatML tokenizer. A random model's next-token scores are
nearly flat, so quantisation noise alone changes its greedy answers; the run therefore teaches it one
fixed reply (REPLY, at a high learning rate), which the chat and the exports must then give back and end. The
prompts end with the after-export check's own prompts, which this tokenizer reads as unknown words."""

import json
import time

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the GPU machine: docs/gpu.md)"),
]

SHAPES = ["tiny-llama", "llama-3.2-1b"]
REPLY = "w1 w2 w3"


@pytest.fixture(scope="module")
def gpu_workspace(new_workspace):
    return new_workspace("gpu", model=False)


@pytest.fixture(scope="module", params=SHAPES)
def shape_path(request):
    from bench.gpu_models import build

    return request.param, build(request.param)


def test_backend_is_unsloth_with_4bit():
    from engine.hardware import detect

    hw = detect()
    assert hw.device == "cuda" and hw.backend == "unsloth" and hw.can_4bit, hw


def test_4bit_load_and_streamed_chat(gpu_workspace, shape_path):
    from engine.models import ModelManager
    from engine.sampling import Sampling

    _, path = shape_path
    manager = ModelManager(gpu_workspace)
    loaded = manager.load(str(path), load_in_4bit=True, max_seq_length=1024)
    assert loaded.load_in_4bit and loaded.cache is not None
    items = list(manager.stream([{"role": "user", "content": "w1 w2 w3"}], Sampling.parse(temperature=0, max_new_tokens=24)))
    assert items[-1].stats.new_tokens > 0 and items[-1].stats.finish in ("stop", "length")
    assert hasattr(loaded.model, "_compiled_call"), "the 4-bit decoding step was not compiled"
    manager.unload()
    assert manager.loaded is None


def _data(path):
    """Prompts of 8 to 300 words (so padding-free batches hold rows of different lengths), one reply."""
    from bench.gpu_models import prompt_words
    from engine.export.verify import PROMPTS

    with path.open("w") as f:
        for i in range(64):
            prompt = prompt_words(8 + (i * 37) % 293, seed=i) + " " + PROMPTS[i % len(PROMPTS)]
            f.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                             {"role": "assistant", "content": REPLY}]}) + "\n")
    return path


def _config(path, data, steps, save_steps):
    from engine.train.config import RunConfig

    return RunConfig.model_validate({
        "model": {"name_or_path": str(path), "load_in_4bit": True, "max_seq_length": 512},
        "dataset": str(data),
        "train": {"max_steps": steps, "batch_size": 2, "gradient_accumulation": 1, "save_steps": save_steps,
                  "logging_steps": 1, "learning_rate": 2e-3},
        "probes": {"prompts": ["w5 w6"], "max_new_tokens": 8},
    })


def _wait(workspace, name, states, timeout=300):
    from engine.train.runs import load_run

    deadline = time.time() + timeout
    while time.time() < deadline:
        run = load_run(workspace, name)
        if run.state in states:
            return run
        time.sleep(1)
    raise AssertionError(f"{name} stayed {run.state}; log:\n{run.log_file.read_text()[-3000:] if run.log_file.exists() else ''}")


def test_worker_trains_stops_and_resumes_with_unsloth(gpu_workspace, shape_path):
    from engine.train.runs import load_run, resume_run, start_run, stop_run

    shape, path = shape_path
    data = _data(gpu_workspace.datasets / f"data-{shape}.jsonl")  # Start takes data sets from the workspace
    name = f"gpu-{shape}"
    start_run(gpu_workspace, _config(path, data, steps=40, save_steps=4), name=name)
    run = _wait(gpu_workspace, name, {"running"})
    while not [e for e in load_run(gpu_workspace, name).events if e.get("type") == "step" and e["step"] >= 5]:
        assert load_run(gpu_workspace, name).state == "running", load_run(gpu_workspace, name).log_file.read_text()[-3000:]
        time.sleep(0.5)
    stop_run(gpu_workspace, name)
    run = _wait(gpu_workspace, name, {"stopped", "failed"})
    assert run.state == "stopped", run.status
    assert run.status.backend.backend == "unsloth"
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()
    stopped_at = run.latest_checkpoint
    assert stopped_at is not None
    resume_run(gpu_workspace, name)
    run = _wait(gpu_workspace, name, {"completed", "failed"})
    assert run.state == "completed", run.status
    steps = [e["step"] for e in run.events if e.get("type") == "step"]
    assert steps[-1] == 40 and int(stopped_at.name.split("-")[1]) < 40
    losses = [e["loss"] for e in run.events if e.get("type") == "step"]
    assert all(l == l for l in losses)  # no NaN


@pytest.mark.parametrize("fmt", ["merged16", "merged4"])
def test_merged_exports_are_checked_after_export(gpu_workspace, shape_path, fmt):
    from engine.export.exporter import export

    shape, _ = shape_path
    result = export(gpu_workspace, f"gpu-{shape}", fmt)
    report = result.report.to_dict()
    print(json.dumps({"shape": shape, "format": fmt, **report})[:2000])
    assert (result.path / "config.json").exists()
    assert all(a.reference == REPLY for a in result.report.answers), result.summary()  # it learned the reply and its end
    # The run trained on a 4-bit base: both merges are held to the stated argmax-agreement floor.
    assert result.report.answers and result.passed, result.summary()


def test_4bit_chat_with_the_trained_adapter(gpu_workspace, shape_path):
    """The adapter trained above, attached to a 4-bit base for chat: compiled decoding with and without it.
    The question is one the run was taught to answer with REPLY (see _data)."""
    from engine.export.verify import PROMPTS
    from engine.models import ModelManager
    from engine.sampling import Sampling
    from engine.train.runs import load_run

    shape, path = shape_path
    manager = ModelManager(gpu_workspace)
    manager.load(str(path), load_in_4bit=True, max_seq_length=1024)
    manager.attach_adapter("tuned", load_run(gpu_workspace, f"gpu-{shape}").path / "adapter")
    ask = [{"role": "user", "content": PROMPTS[0]}]
    greedy = Sampling.parse(temperature=0, max_new_tokens=24)
    tuned = list(manager.stream(ask, greedy, adapter="tuned"))[-1]
    base = list(manager.stream(ask, greedy, adapter=None))[-1]
    assert tuned.text == REPLY and tuned.stats.finish == "stop", (tuned.text, tuned.stats.finish)
    assert base.stats.new_tokens > 0 and not base.text.startswith(REPLY), base.text
    manager.unload()
