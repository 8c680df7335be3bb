"""Sharded sweeps on `torch.distributed`: one process per device, launched by ``torchrun``.

A `Sweep` with ``distributed=True`` splits the batches of every cell across the processes of
the default process group (batch ``i`` goes to rank ``i % world_size``); each process attacks
its batches on its own device, the per-sample components of all batches are gathered to
every process, and every process reduces them exactly as a single process would, so the
records are bit-identical to a one-process run with the same seed and batch size (random
draws stay in step: a process draws, without using them, the random numbers of the batches
it skips). Resume: each process keeps its own copy of the finished cells in the cache, and
the processes agree cell by cell whether all of them have it.

Launch one process per device with torchrun, e.g. on one machine with two GPUs::

    torchrun --nproc-per-node 2 -m scirobust.cli audit audit.yaml --distributed --device cuda

and on several machines with a rendezvous endpoint (the same command on every node)::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \
        --rdzv-endpoint HOST:29400 -m scirobust.cli audit audit.yaml --distributed

From Python, call `init_from_environment` (or ``torch.distributed.init_process_group``)
in every process, run ``audit(..., Sweep(..., distributed=True))``, and save the results
on rank 0 only.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from scirobust.errors import ConfigError

__all__ = ["all_have", "gather_parts", "init_from_environment", "is_main", "local_device",
           "rank_and_world"]

T = TypeVar("T")


def init_from_environment(device: str = "cpu") -> None:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``...): NCCL for CUDA devices, Gloo otherwise. Does nothing
    if a group already exists."""
    if dist.is_initialized():
        return
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing:
        raise ConfigError(
            f"--distributed needs the launcher's environment ({', '.join(missing)} not set): "
            "start the command with torchrun, e.g. torchrun --nproc-per-node 2 -m "
            "scirobust.cli audit audit.yaml --distributed."
        )
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)


def rank_and_world(distributed: bool) -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not distributed."""
    if not distributed:
        return 0, 1
    if not dist.is_available() or not dist.is_initialized():
        raise ConfigError(
            "Sweep(distributed=True) needs a torch.distributed process group: launch with "
            "torchrun and call scirobust.distributed.init_from_environment() (or "
            "torch.distributed.init_process_group) in every process first."
        )
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True on rank 0 (and when not distributed): the process that writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def local_device(device: str | None, distributed: bool) -> str | None:
    """The device of this process: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` when distributed
    (one GPU per process)."""
    if distributed and device is not None and device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def gather_parts(parts: dict[int, T], world: int) -> dict[int, T]:
    """Every process's ``{batch index: result}`` merged into one dict, on every process."""
    if world == 1:
        return parts
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, parts)
    merged: dict[int, T] = {}
    for part in everyone:
        merged.update(part)
    return merged


def all_have(flag: bool, world: int) -> bool:
    """True if ``flag`` is true on every process (a collective: every process must call)."""
    if world == 1:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())
