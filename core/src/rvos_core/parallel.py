"""Run a per-video task over many videos, in worker processes when asked."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from multiprocessing import get_context

from rvos_core.allocator import keep_freed_memory
from rvos_core.progress import progress, progress_bar


def default_workers() -> int:
    """One worker per CPU, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def for_each_video(
    task: Callable[[str], object], video_ids: Sequence[str], workers: int, desc: str
) -> None:
    """Call ``task(video_id)`` for every id (a picklable callable when workers > 1).

    The first failure stops the remaining work and is raised here; videos finished before it
    stay finished (the run folder records them), so the same command resumes.
    """
    if workers <= 1 or len(video_ids) <= 1:
        for video_id in progress(video_ids, desc=desc, total=len(video_ids)):
            task(video_id)
        return
    context = get_context("spawn")
    with (
        ProcessPoolExecutor(
            min(workers, len(video_ids)), mp_context=context, initializer=keep_freed_memory
        ) as pool,
        progress_bar(len(video_ids), desc) as bar,
    ):
        pending = {pool.submit(task, v) for v in video_ids}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            bar.update(len(done))
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for other in pending:
                    other.cancel()
                raise failed.exception()  # type: ignore[misc]
