"""Helpers for tests (no torch): where parity fixtures live, run-folder digests, forked races.

The torch helpers (tiny tokenizers, the full-layout check) are in ``rvos_nn.testing``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rvos_core.errors import ConfigError
from rvos_core.paths import VARIABLES

PARITY_ENV = "RVOS_PARITY_DIR"
REQUIRE_PARITY_ENV = "RVOS_REQUIRE_PARITY"


def parity_root() -> Path:
    """``$RVOS_PARITY_DIR``, the folder of the parity fixtures (the root conftest.py sets a
    default, ``../shared/parity``); it may not exist."""
    base = os.environ.get(PARITY_ENV)
    if not base:
        raise ConfigError(f"{PARITY_ENV} is not set (the root conftest.py sets a default)")
    return Path(base)


def parity_required() -> bool:
    """Whether a missing parity root is an error (``RVOS_REQUIRE_PARITY=1``, as in CI)."""
    return os.environ.get(REQUIRE_PARITY_ENV, "") == "1"


def require_parity_root() -> Path:
    """The parity root; when the folder is absent, skip the calling test (fail instead when
    ``RVOS_REQUIRE_PARITY=1``). Every skip comes from this one place, so pytest's short summary
    folds them into one line."""
    root = parity_root()
    if root.is_dir():
        return root
    message = (
        f"parity fixtures folder {root} is missing: set {PARITY_ENV} to the folder holding "
        f"them (default ../shared/parity beside the repository)"
    )
    if parity_required():
        raise ConfigError(f"{message}; {REQUIRE_PARITY_ENV}=1 makes this an error")
    import pytest

    pytest.skip(message)


def parity_dir(name: str) -> Path:
    """``$RVOS_PARITY_DIR/<name>``. Without the root folder the calling test is skipped
    (``require_parity_root``); a missing fixture folder under an existing root is an error (a
    parity test must not pass vacuously)."""
    root = require_parity_root()
    path = root / name
    if not path.is_dir():
        raise ConfigError(f"parity fixture folder {path} is missing ({PARITY_ENV}={root})")
    return path


def tree_digest(root: Path) -> str:
    """sha256 of every file under ``root`` (hidden ones too): relative names and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def _when_all_ready(
    barrier: multiprocessing.synchronize.Barrier, call: Callable[[], object]
) -> None:
    barrier.wait()
    call()


def run_forked(*calls: Callable[[], object], timeout: float = 60.0) -> list[int | None]:
    """Run each call in a forked process, all released at once; their exit codes (0: returned,
    1: raised, -9: killed, still running ``timeout`` seconds after the start of the wait)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(calls))
    processes = [context.Process(target=_when_all_ready, args=(barrier, c)) for c in calls]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
    return [process.exitcode for process in processes]


def unset_path_variables(monkeypatch: Any) -> None:
    """Remove the paths.env variables from the environment for one test (a pytest MonkeyPatch),
    so that only the test's own paths.env or options count."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
