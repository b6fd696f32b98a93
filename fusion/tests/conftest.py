"""Tiny hand-made datasets and runs for the fusion unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvos_core.data import Dataset, open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos


@pytest.fixture
def tiny(tmp_path: Path) -> Dataset:
    """One video 'v' with 3 expressions (a pair and an unpaired one), 2 frames of 1x4 pixels."""
    write_refytvos(tmp_path / "data", "valid", [VideoSpec("v", 3, 2, (1, 4))], frames=False)
    return open_dataset("refytvos", tmp_path / "data", "valid")
