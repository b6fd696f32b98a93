"""Processes of one training run: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), the
process group (NCCL on GPU, gloo on CPU) and the few collectives the engine needs.

One process without torchrun is a world of one; nothing is initialised then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place: rank, size, and the device it trains on."""

    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device: str) -> World:
    """Join torchrun's process group (when WORLD_SIZE > 1) and pick this process's device
    (``cuda:LOCAL_RANK`` on GPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device(f"cuda:{local}") if device == "cuda" else torch.device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return World(rank=rank, size=size, device=chosen)


def leave() -> None:
    """Destroy the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_all(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over every process (the tensor itself in a world of one)."""
    if dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
    return values


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every process."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, 0)
    return bool(value.item())
