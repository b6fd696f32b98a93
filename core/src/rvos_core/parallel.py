"""Run a per-video task over many videos, in worker processes when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import TypeVar

from rvos_core.allocator import keep_freed_memory
from rvos_core.progress import progress, progress_bar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One worker per CPU, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _init_worker() -> None:
    """Workers share the CPUs: OpenCV single-threaded; freed memory kept (rvos_core.allocator)."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


def map_videos(
    task: Callable[[T], R], items: Sequence[T], workers: int, desc: str, unit: str = "video"
) -> list[R]:
    """``[task(item) for item in items]``, over ``workers`` spawned processes when workers > 1
    (``task`` must then be picklable: a module-level function or a partial of one).

    The first failure cancels the remaining work and is raised here (errors of rvos_core.errors
    cross the process boundary intact). Work finished before it stays finished: stages record
    each video in their run folder, so the same command resumes.
    """
    if workers <= 1 or len(items) <= 1:
        return [task(item) for item in progress(items, desc=desc, total=len(items), unit=unit)]
    results: dict[int, R] = {}
    with (
        ProcessPoolExecutor(
            min(workers, len(items)), mp_context=get_context("spawn"), initializer=_init_worker
        ) as pool,
        progress_bar(len(items), desc, unit=unit) as bar,
    ):
        futures = {pool.submit(task, item): i for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results[futures[future]] = future.result()
                bar.update(len(done))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [results[i] for i in range(len(items))]


def for_each_video(
    task: Callable[[str], object], video_ids: Sequence[str], workers: int, desc: str
) -> None:
    """Call ``task(video_id)`` for every id (see map_videos)."""
    map_videos(task, video_ids, workers, desc)
