"""One run on several processes through torchrun, on the CPU: real DDP with the gloo backend, two
real worker processes training the tiny model. The same run.yaml on one and on two processes, Stop,
kill -9 of one rank and Resume, and two launchers on 127.0.0.1 as two machines of one process each."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from test_train_runs import ended, make_config, chat_file, steps_of, wait_for  # noqa: F401 (fixtures)

from engine.train import distributed, runs

ROOT = Path(__file__).resolve().parent.parent


def losses(run: runs.Run) -> list[float]:
    return [e["loss"] for e in run.current("step")]


def adapter_config(run: runs.Run) -> dict:
    config = json.loads((run.adapter / "adapter_config.json").read_text())
    return {**config, "target_modules": sorted(config["target_modules"])}  # peft writes a set, in any order


def test_the_effective_batch_stays_the_persons_choice():
    assert distributed.processes(None, 0) == 1 and distributed.processes(None, 1) == 1
    assert distributed.processes(None, 4) == 4 and distributed.processes(2, 4) == 2
    assert distributed.accumulation(4, 2) == 2 and distributed.accumulation(4, 1) == 4
    assert str(distributed.batch_note(2, 4, 2)) == (
        "effective batch 8 (batch 2 a process x accumulation 2 x 2 processes)")
    assert "so the effective batch is 8, not 6" in distributed.batch_note(2, 3, 2)
    one, two = distributed.command(Path("/r"), Path("/w"), 1), distributed.command(Path("/r"), Path("/w"), 2)
    assert one[1:] == ["-m", "engine", "train", "/r", "--workspace", "/w"]
    assert two[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"] and two[5:] == one[1:]


def test_more_processes_than_gpus_cannot_start(make_config):
    from engine.hardware import Hardware
    from engine.train.backend import choose

    gpu = Hardware("cuda", "NVIDIA H200", True, 141 * 2**30, "unsloth", True)  # described: no GPU here
    _, problems = choose(_two(make_config()), gpu)
    assert any(f"2 processes need 2 GPUs, one each, and this machine has {distributed.visible_gpus()}" in p
               for p in problems)
    assert choose(_two(make_config()), Hardware("cpu", "CPU", False, 8 * 2**30, "transformers", False))[1] == []


def test_two_processes_train_the_run_one_process_trains(workspace, make_config):
    config = make_config(batch_size=2, gradient_accumulation=2)
    runs.start_run(workspace, config.model_copy(update={"train": config.train.model_copy(update={"processes": 2})}),
                   name="two")
    two = wait_for("two", workspace, ended, timeout=300)
    assert two.state == "completed", two.status
    runs.start_run(workspace, config, name="one")
    one = wait_for("one", workspace, ended, timeout=300)
    assert one.state == "completed", one.status
    assert (two.status.processes, one.status.processes) == (2, 1)

    # Rank 0 alone wrote the folder: one start, one line a step, the probes once at each save.
    assert [e["type"] for e in two.events].count("start") == 1
    assert steps_of(two) == steps_of(one) == [1, 2, 3, 4, 5, 6]
    assert [p["step"] for p in two.probes] == [p["step"] for p in one.probes] == [0, 3, 6]
    # The same effective batch, so the same real tokens a step (counted over both ranks) and loss curve.
    assert [e["tokens"] for e in two.current("step")] == [e["tokens"] for e in one.current("step")]
    assert losses(two) == pytest.approx(losses(one), rel=1e-3)
    assert sorted(p.name for p in two.adapter.iterdir()) == sorted(p.name for p in one.adapter.iterdir())
    assert adapter_config(two) == adapter_config(one)
    assert [c.name for c in two.checkpoints] == ["checkpoint-3", "checkpoint-6"]
    assert any("2 processes" in e.get("text", "") for e in two.events)


def _two(config):
    return config.model_copy(update={"train": config.train.model_copy(update={"processes": 2})})


def test_stop_ends_every_rank_at_one_step_with_a_whole_checkpoint(workspace, make_config):
    runs.start_run(workspace, _two(make_config(max_steps=500, save_steps=400)), name="stop2")
    wait_for("stop2", workspace, lambda r: len(steps_of(r)) >= 2 or ended(r), timeout=300)
    runs.stop_run(workspace, "stop2")
    run = wait_for("stop2", workspace, ended, timeout=300)
    assert run.state == "stopped", run.status
    last = steps_of(run)[-1]
    assert run.latest_checkpoint.name == f"checkpoint-{last}"
    assert (run.latest_checkpoint / "adapter_model.safetensors").is_file() and run.adapter is not None


def test_a_killed_rank_fails_the_run_with_advice_and_resume_continues(workspace, make_config):
    runs.start_run(workspace, _two(make_config(max_steps=400, save_steps=3, batch_size=2)), name="kill2")
    run = wait_for("kill2", workspace, lambda r: len(r.checkpoints) >= 2 or ended(r), timeout=300)
    rank0 = psutil.Process(run.status.pid)
    follower = next(p for p in rank0.parent().children() if p.pid != rank0.pid)
    os.kill(follower.pid, signal.SIGKILL)
    run = wait_for("kill2", workspace, ended, timeout=120)
    assert run.state == "failed", run.status
    assert "One of the run's 2 training processes ended unexpectedly" in run.status.error
    checkpoint = run.latest_checkpoint
    assert f"Resume continues from the last checkpoint ({checkpoint.name})" in run.status.advice
    done = int(checkpoint.name.split("-")[1])
    run.path.joinpath("run.yaml").write_text(_two(make_config(max_steps=done + 2, save_steps=3, batch_size=2)).to_yaml())
    runs.resume_run(workspace, "kill2")
    run = wait_for("kill2", workspace, ended, timeout=300)
    assert run.state == "completed", run.status
    assert any(f"Resuming from {checkpoint.name}" in e.get("text", "") for e in run.events)
    assert [e["step"] for e in run.current("step")] == list(range(1, done + 3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_through_torchruns_rendezvous(workspace, make_config):
    """Two launchers as two machines of one process each (both on 127.0.0.1), started as the README says."""
    run = runs.create_run(workspace, make_config(batch_size=2, gradient_accumulation=2), name="nodes")
    endpoint = f"127.0.0.1:{_free_port()}"
    launchers = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
                          f"--node-rank={node}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                          "--rdzv-id=nodes", "-m", "engine", "train", str(run.path), "--workspace", str(workspace.root)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], outputs
    run = runs.load_run(workspace, "nodes")
    assert run.state == "completed" and run.status.processes == 2, run.status
    assert steps_of(run) == [1, 2, 3, 4, 5, 6] and run.adapter is not None
