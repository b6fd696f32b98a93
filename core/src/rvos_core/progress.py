"""Progress bars with ETA for every stage that loops over videos.

Shown on stderr when it is a terminal; RVOS_PROGRESS=1 forces them on, RVOS_PROGRESS=0 off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


def _disabled() -> bool:
    force = os.environ.get("RVOS_PROGRESS")
    return (not sys.stderr.isatty()) if force is None else force == "0"


class _NoBar:
    """What a stage uses of a bar when bars are off (tqdm, whose import costs a tenth of a
    torch-free command's start-up, is then not imported)."""

    disable = True

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


def progress_bar(total: int, desc: str, unit: str = "video") -> tqdm | _NoBar:
    """A bar (elapsed, rate, ETA) to advance by hand with ``update(n)``; use as a context manager."""
    if _disabled():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "video"
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    if _disabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True)
