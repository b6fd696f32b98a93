"""Who trains on what: the global batch is the same for any split into processes and
micro-batches, and every random draw is a function of (seed, epoch, position)."""

from __future__ import annotations

import pytest
import torch

from rvos_train import sampling


def _global_batch(layout: sampling.Layout, step: int) -> list[int]:
    """Positions of one step in (slot, clip) order, gathered over every process."""
    slots = {}
    for rank in range(layout.world):
        for micro in range(layout.accumulation):
            slots[layout.slot(micro, rank)] = list(
                sampling.micro_positions(layout, step, micro, rank)
            )
    return [p for slot in sorted(slots) for p in slots[slot]]


@pytest.mark.parametrize(("world", "accumulation"), [(1, 4), (2, 2), (4, 1)])
def test_global_batch_does_not_depend_on_the_split(world: int, accumulation: int) -> None:
    layout = sampling.Layout(batch_size=2, world=world, accumulation=accumulation)
    assert layout.global_batch == 8
    assert _global_batch(layout, 3) == list(range(24, 32))


def test_accumulation_keeps_the_global_batch() -> None:
    assert sampling.accumulation_for(8, 1, 2) == 4
    with pytest.raises(ValueError, match="not a multiple"):
        sampling.accumulation_for(8, 3, 1)


def test_orders_and_generators_are_seeded() -> None:
    a = sampling.epoch_order(50, 1, 0)
    assert sorted(a) == list(range(50))
    assert (a == sampling.epoch_order(50, 1, 0)).all()
    assert not (a == sampling.epoch_order(50, 1, 1)).all()
    assert not (a == sampling.epoch_order(50, 2, 0)).all()
    draws = [sampling.clip_rng(1, 0, p).random() for p in (0, 0, 1)]
    assert draws[0] == draws[1] != draws[2]
    sampling.seed_model_rng(1, 5, 0)
    first = torch.rand(3)
    sampling.seed_model_rng(1, 5, 0)
    assert torch.equal(first, torch.rand(3))
    sampling.seed_model_rng(1, 5, 1)
    assert not torch.equal(first, torch.rand(3))


def test_last_partial_batch_is_dropped() -> None:
    assert sampling.steps_per_epoch(17, 8) == 2
    assert sampling.steps_per_epoch(7, 8) == 0
