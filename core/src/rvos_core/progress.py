"""Progress bars with ETA for every stage that loops over videos."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "video"
) -> Iterator[T]:
    """Wrap ``items`` in a progress bar (elapsed, rate, ETA) on stderr; silent when not a TTY
    unless RVOS_PROGRESS=1."""
    force = os.environ.get("RVOS_PROGRESS")
    disable = (not sys.stderr.isatty()) if force is None else force == "0"
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True)
