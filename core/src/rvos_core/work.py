"""What an executor runs (rvos_core.parallel here, rvos_core.ray_pool on Ray) and which
executor the environment asks for."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from rvos_core.allocator import keep_freed_memory
from rvos_core.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Work(Generic[T, R]):
    """A task over items, for an executor.

    Attributes:
        setup: makes the task (``item -> result``); picklable when run in workers (a
            module-level function or a partial of one).
        items: what the task is run on; results come back in this order.
        desc / unit: what the progress bar shows.
        cost: item -> its size (e.g. frames x expressions); a Ray queue starts with the largest.
        gpus: the share of a GPU each Ray worker holds (0: a CPU task).
    """

    setup: Callable[[], Callable[[T], R]]
    items: Sequence[T]
    desc: str
    unit: str = "video"
    cost: Callable[[T], float] | None = None
    gpus: float = 0.0


def executor() -> str:
    """The executor the environment asks for: ``EXECUTOR`` = local (default) or ray."""
    name = os.environ.get("EXECUTOR") or "local"
    if name not in EXECUTORS:
        raise ConfigError(f"EXECUTOR={name}: expected one of {', '.join(EXECUTORS)}")
    return name


def init_worker() -> None:
    """Workers share the CPUs: OpenCV single-threaded; freed memory kept (rvos_core.allocator)."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()
