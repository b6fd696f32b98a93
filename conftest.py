"""Project-wide pytest setup: parity data location and the gpu / weights markers.

Tests marked ``parity`` (and every test calling ``rvos_core.testing.parity_dir``) skip when the
parity root folder is absent, all through one helper so that the short summary reports them in
one line naming the folder; with ``RVOS_REQUIRE_PARITY=1`` (CI) they fail instead."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from rvos_core.data import Dataset, open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("RVOS_PARITY_DIR", str(ROOT.parent / "shared" / "parity"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A hook, not a fixture: a skip raised in a fixture is reported at each test's location.
    if item.get_closest_marker("parity") is not None:
        from rvos_core.testing import require_parity_root

        require_parity_root()


def _has_cuda() -> bool:
    """Whether torch is installed and sees a CUDA device (the torch-free environments have none)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not _has_cuda():
        no_gpu = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_tests:
            item.add_marker(no_gpu)


SMALL_SPECS = [
    VideoSpec("vid_a", expressions=3, frames=4, size=(24, 32)),
    VideoSpec("vid_b", expressions=2, frames=3, size=(20, 28)),
    VideoSpec("vid_c", expressions=1, frames=5, size=(16, 16)),
]


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """DATA folder holding a small Ref-YouTube-VOS-style valid split with frames."""
    write_refytvos(tmp_path / "data", "valid", SMALL_SPECS)
    return tmp_path / "data"


@pytest.fixture
def small_dataset(small_data: Path) -> Dataset:
    return open_dataset("refytvos", small_data, "valid")
