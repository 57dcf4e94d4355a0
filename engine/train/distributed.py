"""One run on several processes (GPUs, or machines) through torchrun, PyTorch's own launcher.

The worker is the same program on every process: torchrun starts it N times with RANK, WORLD_SIZE
and LOCAL_RANK set, and trl's trainer (through accelerate) then trains with DDP. Rank 0 alone writes
the run folder (status, events, probes, the adapter; the trainer itself saves checkpoints only on
the main process); the others follow. Decisions every rank must share (Stop) are agreed on with a
collective at each step, so all ranks end at the same step and the checkpoint is whole.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from engine.i18n import msg


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def processes(requested: int | None, gpus: int) -> int:
    """How many processes a run uses on this machine: the number asked for, else every GPU when there
    are several, else one."""
    if requested:
        return requested
    return gpus if gpus > 1 else 1


def accumulation(chosen: int, count: int) -> int:
    """Accumulation steps of each process, so that batch x accumulation x processes stays the
    effective batch the person chose (rounded up where `count` does not divide it)."""
    return max(1, math.ceil(chosen / count))


def batch_note(batch: int, chosen_accumulation: int, count: int) -> str:
    """The effective batch in words, and what changed where the processes do not divide it."""
    each = accumulation(chosen_accumulation, count)
    effective = batch * each * count
    if count == 1:
        return msg("effective batch {effective}", effective=effective)
    note = msg("effective batch {effective} (batch {batch} a process x accumulation {each} x {count} processes)",
               effective=effective, batch=batch, each=each, count=count)
    if effective != batch * chosen_accumulation:
        note = msg("{note}; {count} processes do not divide accumulation {chosen}, so the effective batch is "
                   "{effective}, not {wanted}: choose an accumulation that {count} divides to keep it",
                   note=note, count=count, chosen=chosen_accumulation, effective=effective,
                   wanted=batch * chosen_accumulation)
    return note


def command(run_dir: Path, workspace_root: Path, count: int) -> list[str]:
    """The worker's command line: itself for one process, under torchrun (one machine) for several."""
    worker = ["-m", "engine", "train", str(run_dir), "--workspace", str(workspace_root)]
    if count == 1:
        return [sys.executable, *worker]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={count}", *worker]


def _reduce(value: float, op: str) -> float:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return value
    device = f"cuda:{local_rank()}" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([float(value)], device=device)
    dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
    return tensor.item()


def any_rank(flag: bool) -> bool:
    """True on every rank where it is true on one (call it on every rank at the same point)."""
    return bool(_reduce(1.0 if flag else 0.0, "MAX"))


def total(value: int) -> int:
    """The sum of `value` over the ranks (call it on every rank at the same point)."""
    return int(_reduce(value, "SUM"))


# What gloo and NCCL say when the process at the other end of a collective is gone.
_LOST = ("Connection closed by peer", "remote worker crashing", "Connection reset by peer", "NCCL communicator was aborted")


def lost_peer(e: BaseException) -> bool:
    """Whether `e` is this process finding that another process of the run died."""
    import torch.distributed as dist

    return isinstance(e, getattr(dist, "DistError", ())) or (isinstance(e, RuntimeError)
                                                             and any(s in str(e) for s in _LOST))
