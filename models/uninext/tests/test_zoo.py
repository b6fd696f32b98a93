"""The tiny zoo's UNINEXT weights load strictly through the real loader (the other networks are
checked in train/tests/test_zoo.py, whose environment holds them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rvos_nn.zoo import MANIFEST, Zoo, load_model

SHIPPED = Path(__file__).resolve().parents[3] / "zoo"
NAMES = ("uninext_vith", "uninext_convnext")


def _shipped() -> list[str]:
    if not (SHIPPED / MANIFEST).is_file():
        return []
    return sorted(n for n in Zoo.open(SHIPPED).entries if n in NAMES)


def test_the_zoo_ships_both_uninext_models() -> None:
    assert _shipped() == sorted(NAMES)


@pytest.mark.parametrize("name", _shipped())
def test_a_shipped_uninext_loads_strictly(name: str) -> None:
    model = load_model(Zoo.open(SHIPPED), name)
    assert all(torch.isfinite(p).all() for p in model.parameters())
