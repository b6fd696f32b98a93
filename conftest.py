"""Project-wide pytest setup: parity data location and the gpu / weights markers.

Tests marked ``parity`` (and every test calling ``rvos_core.testing.parity_dir``) skip when the
parity root folder is absent, all through one helper so that the short summary reports them in
one line naming the folder; with ``RVOS_REQUIRE_PARITY=1`` (CI) they fail instead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("RVOS_PARITY_DIR", str(ROOT.parent / "shared" / "parity"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A hook, not a fixture: a skip raised in a fixture is reported at each test's location.
    if item.get_closest_marker("parity") is not None:
        from rvos_core.testing import require_parity_root

        require_parity_root()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
