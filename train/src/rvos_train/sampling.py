"""Which clip every process trains on at every step, and the random state of each: pure functions
of (seed, epoch, position), so that a run is reproducible, resumes exactly and gives the same
global batches for any number of processes.

An epoch visits the training set in one seeded permutation. Step s of the epoch takes positions
[s·G, (s+1)·G) of it, G = the global batch (batch_size x reference_gpus); the last partial batch
is dropped (upstream's ``drop_last=True``). Position p of a step is served by the micro-batch
``slot = p // batch_size``; slot = micro · world + rank, so one process with two micro-batches
sees exactly what two processes with one each see. Each clip draws its augmentation from a
generator seeded with (seed, epoch, position); each micro-batch seeds torch's generator (dropout)
with (seed, step, slot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DATA_STREAM = 0xDA7A
MODEL_STREAM = 0x5EED


@dataclass(frozen=True)
class Layout:
    """How a global batch is split: ``world`` processes x ``accumulation`` micro-batches x
    ``batch_size`` clips."""

    batch_size: int
    world: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world * self.accumulation

    def slot(self, micro: int, rank: int) -> int:
        return micro * self.world + rank


def accumulation_for(global_batch: int, batch_size: int, world: int) -> int:
    """Micro-batches per step so that ``world`` processes reach ``global_batch``; a ValueError
    when it does not divide."""
    per_step = batch_size * world
    if global_batch % per_step:
        raise ValueError(
            f"the global batch {global_batch} is not a multiple of batch_size x processes = "
            f"{batch_size} x {world}"
        )
    return global_batch // per_step


def epoch_order(size: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of the training set that epoch ``epoch`` visits (int64 [size])."""
    return np.random.default_rng([seed, epoch, DATA_STREAM]).permutation(size)


def steps_per_epoch(size: int, global_batch: int) -> int:
    return size // global_batch


def micro_positions(layout: Layout, step_in_epoch: int, micro: int, rank: int) -> range:
    """Positions of the epoch's order served by (micro, rank) at ``step_in_epoch``."""
    start = step_in_epoch * layout.global_batch + layout.slot(micro, rank) * layout.batch_size
    return range(start, start + layout.batch_size)


def clip_rng(seed: int, epoch: int, position: int) -> np.random.Generator:
    """The augmentation generator of one clip."""
    return np.random.default_rng([seed, epoch, position, DATA_STREAM])


def seed_model_rng(seed: int, step: int, slot: int) -> None:
    """Seed torch's CPU (and CUDA) generators for one micro-batch's forward (dropout)."""
    value = int(np.random.default_rng([seed, step, slot, MODEL_STREAM]).integers(2**62))
    torch.manual_seed(value)
