from __future__ import annotations

from pathlib import Path

import pytest

from rvos_core.data import Dataset, open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos

SPECS = [
    VideoSpec("vid_a", expressions=3, frames=4, size=(24, 32)),
    VideoSpec("vid_b", expressions=2, frames=3, size=(20, 28)),
    VideoSpec("vid_c", expressions=1, frames=5, size=(16, 16)),
]


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """DATA folder holding a small Ref-YouTube-VOS-style valid split with frames."""
    write_refytvos(tmp_path / "data", "valid", SPECS)
    return tmp_path / "data"


@pytest.fixture
def small_dataset(small_data: Path) -> Dataset:
    return open_dataset("refytvos", small_data, "valid")


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test double (core_double.py) registered under rvos.models and rvos.parity.

    Returns the folder to put on PYTHONPATH (with core/tests) for subprocesses.
    """
    from core_double import GROUPS, write_entry_points

    folder = write_entry_points(tmp_path / "entry_points", GROUPS)
    monkeypatch.syspath_prepend(str(folder))
    return folder
