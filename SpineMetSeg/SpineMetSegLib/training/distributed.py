"""Multi-process training with ``torchrun``: process group set-up, rank-0-only writing, tear-down.

Usage (one node, two GPUs; on CPUs the gloo backend is used)::

    torchrun --nproc_per_node 2 -m SpineMetSegLib.cli train --output run1 ...

    from SpineMetSegLib.training.distributed import start, stop
    context = start("auto")              # reads RANK / WORLD_SIZE / LOCAL_RANK that torchrun sets
    if context.is_main: ...              # only rank 0 writes checkpoints, logs and the model
    stop(context)

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) it is a single process and nothing is initialised.
Backends: nccl on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..inference.devices import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, local_rank, chosen)


def barrier(context: DistributedContext) -> None:
    if context.distributed:
        dist.barrier()


def stop(context: DistributedContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
