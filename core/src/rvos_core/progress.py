"""Progress bars with ETA for every stage that loops over videos.

Shown on stderr when it is a terminal; RVOS_PROGRESS=1 forces them on, RVOS_PROGRESS=0 off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _disabled() -> bool:
    force = os.environ.get("RVOS_PROGRESS")
    return (not sys.stderr.isatty()) if force is None else force == "0"


def progress_bar(total: int, desc: str, unit: str = "video") -> tqdm:
    """A bar (elapsed, rate, ETA) to advance by hand with ``update(n)``; use as a context manager."""
    return tqdm(total=total, desc=desc, unit=unit, disable=_disabled(), dynamic_ncols=True)


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "video"
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    yield from tqdm(
        items, desc=desc, total=total, unit=unit, disable=_disabled(), dynamic_ncols=True
    )
