"""Fixtures of the nn tests (the small datasets are the root conftest's)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test double (nn_double.py) registered under rvos.models and rvos.parity.

    Returns the folder to put on PYTHONPATH (with nn/tests) for subprocesses.
    """
    from nn_double import GROUPS, write_entry_points

    folder = write_entry_points(tmp_path / "entry_points", GROUPS)
    monkeypatch.syspath_prepend(str(folder))
    return folder
