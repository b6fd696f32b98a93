"""Helpers for tests: where parity fixtures live, small generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

from rvos_core.errors import ConfigError


def parity_dir(name: str) -> Path:
    """``$RVOS_PARITY_DIR/<name>``; a missing folder is an error (a parity test must not pass vacuously)."""
    base = os.environ.get("RVOS_PARITY_DIR")
    if not base:
        raise ConfigError("RVOS_PARITY_DIR is not set (the root conftest.py sets a default)")
    path = Path(base) / name
    if not path.is_dir():
        raise ConfigError(f"parity fixture folder {path} is missing (RVOS_PARITY_DIR={base})")
    return path
