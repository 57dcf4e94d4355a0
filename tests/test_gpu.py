"""The GPU path end to end on a CUDA GPU: 4-bit load and chat with compiled decoding, a worker run
with the unsloth backend, Stop and Resume, merged 16-bit and 4-bit exports with their after-export
check, chat with the trained adapter on a 4-bit base. Run on the GPU machine
(docs/gpu.md says how); skipped, with this reason, wherever there is no CUDA.

No weights reach the GPU machine, so the models are random-init llamas of real shapes built there
(tests/model_shapes.py), with a word-level ChatML tokenizer. A random model's next-token scores are
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
    from tests.model_shapes import build

    return request.param, build(request.param)


def test_backend_is_unsloth_with_4bit():
    from engine.hardware import detect

    hw = detect()
    assert hw.device == "cuda" and hw.backend == "unsloth" and hw.can_4bit, hw


def test_4bit_load_and_streamed_chat(gpu_workspace, shape_path):
    """The first reply comes at once, uncompiled, while the compiled decoding step is built in the
    background; once built, replies use it."""
    from engine.chat.models import ModelManager
    from engine.chat.sampling import Sampling

    _, path = shape_path
    manager = ModelManager(gpu_workspace)
    loaded = manager.load(str(path), load_in_4bit=True, max_seq_length=1024)
    assert loaded.load_in_4bit and loaded.decoding is not None
    ask, greedy = [{"role": "user", "content": "w1 w2 w3"}], Sampling.parse(temperature=0, max_new_tokens=24)
    early = list(manager.stream(ask, greedy))[-1]
    assert early.stats.new_tokens > 0 and early.stats.finish in ("stop", "length")
    assert loaded.decoding.state == "building" and "being built" in loaded.summary()
    assert loaded.decoding.wait(300) == "compiled", loaded.decoding.state
    assert hasattr(loaded.model, "_compiled_call"), "the 4-bit decoding step was not compiled"
    later = list(manager.stream(ask, greedy))[-1]
    assert later.stats.new_tokens > 0 and later.stats.finish in ("stop", "length")
    manager.unload()
    assert manager.loaded is None


def test_varlen_kernel_matches_attention_per_conversation():
    """engine/train/varlen.py's flash call against float32 SDPA run on each conversation alone: the
    8B shape's heads (32 query, 8 key/value, dimension 128), causal, forward and backward."""
    import torch.nn.functional as F

    from engine.train.varlen import varlen_attn

    torch.manual_seed(0)
    lengths, heads, kv_heads, dim = [37, 300, 5, 811, 300, 64], 32, 8, 128
    total = sum(lengths)
    q = torch.randn(total, heads, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(total, kv_heads, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(total, kv_heads, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32, device="cuda")
    out = varlen_attn(q, k, v, cu, cu, max(lengths), max(lengths), window_size=(-1, 0), enable_gqa=True)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref = [x.detach().float().requires_grad_() for x in (q, k, v)]
    outs = [F.scaled_dot_product_attention(*(x[a:b].transpose(0, 1) for x in ref), is_causal=True, enable_gqa=True)
            for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())]
    ref_out = torch.cat([o.transpose(0, 1) for o in outs])
    ref_out.backward(grad.float())

    def rel(a, b):
        return float((a.float() - b).norm() / b.norm())

    assert rel(out, ref_out) < 1e-2
    for mine, theirs in zip((q, k, v), ref):
        assert rel(mine.grad, theirs.grad) < 2e-2


def test_padding_free_attention_is_one_call_a_layer_and_trains_as_the_padded_batch(shape_path, tmp_path, monkeypatch):
    """The unsloth backend as the worker loads it: a padding-free row of four conversations attends in
    one call a layer, and gives the loss and LoRA gradients of unsloth's own attention per conversation
    (same row, same matrix shapes) and of the padded batch (other shapes, so 4-bit rounding differs)."""
    from unsloth.utils import attention_dispatch

    from engine.hardware import detect
    from engine.train import backend
    from engine.train.config import with_changes

    _, path = shape_path
    config = with_changes(_config(path, tmp_path / "data.jsonl", steps=1, save_steps=1), {"lora.dropout": 0.0})
    model, _ = backend.load(config, backend.resolve(config, detect()), path)
    varlen = attention_dispatch._TORCH_VARLEN_ATTN
    assert varlen is not None or attention_dispatch.HAS_FLASH_ATTENTION
    calls = []
    packed = attention_dispatch._torch_varlen_packed
    monkeypatch.setattr(attention_dispatch, "_torch_varlen_packed", lambda *a, **k: calls.append(1) or packed(*a, **k))

    torch.manual_seed(0)
    rows = [torch.randint(7, 4000, (n,)) for n in (37, 300, 5, 190)]
    longest = max(len(r) for r in rows)
    padded = torch.zeros(len(rows), longest, dtype=torch.long)
    mask = torch.zeros_like(padded)
    for i, r in enumerate(rows):
        padded[i, :len(r)], mask[i, :len(r)] = r, 1
    flat = dict(input_ids=torch.cat(rows)[None], position_ids=torch.cat([torch.arange(len(r)) for r in rows])[None],
                labels=torch.cat([torch.cat([torch.tensor([-100]), r[1:]]) for r in rows])[None])
    batches = {  # name: (batch, the varlen attention unsloth sees, attention calls through it)
        "padded": (dict(input_ids=padded, attention_mask=mask, labels=padded.masked_fill(mask == 0, -100)), varlen, 0),
        "padding-free": (flat, varlen, model.config.num_hidden_layers),  # one call a layer
        "per conversation": (flat, None, 0),  # unsloth's fallback: SDPA once per run of equal lengths
    }
    model.train()
    losses, grads = {}, {}
    for name, (batch, attention, expected_calls) in batches.items():
        monkeypatch.setattr(attention_dispatch, "_TORCH_VARLEN_ATTN", attention)
        model.zero_grad(set_to_none=True)
        calls.clear()
        loss = model(**{k: v.cuda() for k, v in batch.items()}).loss
        assert len(calls) == expected_calls, name
        loss.backward()
        losses[name] = loss.item()
        grads[name] = torch.cat([p.grad.float().flatten() for n, p in model.named_parameters() if "lora_B" in n])

    def rel(a, b):
        return float((grads[a] - grads[b]).norm() / grads[b].norm())

    print(json.dumps({"losses": losses, "grad_rel_err_per_conversation": rel("padding-free", "per conversation"),
                      "grad_rel_err_padded": rel("padding-free", "padded")}))
    for other in ("per conversation", "padded"):
        assert abs(losses["padding-free"] - losses[other]) < 1e-3 * losses[other]
    assert rel("padding-free", "per conversation") < 2e-2
    assert rel("padding-free", "padded") < 5e-2


def test_the_checkpointed_layers_switch_between_batches_and_keep_the_loss_and_gradients(tmp_path):
    """unsloth's checkpointing switched between forwards as the trainer switches it per batch
    (backend.set_checkpointed; 4-bit tiny shape): a checkpointed layer runs again in backward, the others
    do not, and the loss and LoRA gradients stay those of checkpointing every layer."""
    from engine.hardware import detect
    from engine.train import backend
    from engine.train.config import with_changes
    from tests.model_shapes import build

    path = build("tiny-llama")
    config = with_changes(_config(path, tmp_path / "data.jsonl", steps=1, save_steps=1), {"lora.dropout": 0.0})
    settings = backend.resolve(config, detect())
    model, _ = backend.load(config, settings, path)
    n = backend.checkpoint_layers(model, settings)
    layers = backend.decoder_layers(model)
    assert settings.backend == "unsloth" and n == len(layers) >= 2
    runs = [0] * n  # forwards of each layer, recomputations in backward too
    for i, layer in enumerate(layers):
        layer.register_forward_pre_hook(lambda *_, i=i: runs.__setitem__(i, runs[i] + 1))
    torch.manual_seed(0)
    ids = torch.randint(7, 4000, (1, 256), device="cuda")
    model.train()
    seen = []
    for k in (n, 0, n // 2, n):
        backend.set_checkpointed(model, settings, k)
        runs[:] = [0] * n
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        assert sorted(runs) == [1] * (n - k) + [2] * k, (k, runs)
        seen.append((k, loss.item(), torch.cat([p.grad.float().flatten() for name, p in model.named_parameters()
                                                if "lora_B" in name])))
    _, loss_all, grads_all = seen[0]
    print(json.dumps({"losses": [(k, loss) for k, loss, _ in seen],
                      "grad_rel_err": [(k, float((g - grads_all).norm() / grads_all.norm())) for k, _, g in seen]}))
    for k, loss, grads in seen[1:]:
        assert loss == pytest.approx(loss_all, rel=1e-4), k
        assert float((grads - grads_all).norm() / grads_all.norm()) < 1e-2, k


def _data(path):
    """Prompts of 8 to 300 words (so padding-free batches hold rows of different lengths), one reply."""
    from tests.model_shapes import prompt_words
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
    from engine.chat.models import ModelManager
    from engine.chat.sampling import Sampling
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
