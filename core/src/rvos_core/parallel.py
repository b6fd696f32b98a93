"""Run a per-video task over many videos: in this process, in local worker processes, or on a
Ray cluster (``EXECUTOR=ray``, rvos_core.ray_pool, imported only then).

A ``Work`` says what to do: ``setup`` makes the per-item task (once per worker on Ray, where each
worker loads its own network; once here otherwise), ``items`` are what the task is run on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from functools import partial
from multiprocessing import get_context
from types import ModuleType
from typing import TypeVar

from rvos_core.errors import ConfigError
from rvos_core.progress import progress, progress_bar
from rvos_core.work import Work, executor, init_worker

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One worker per CPU, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def given(task: Callable[[T], R]) -> Callable[[T], R]:
    """The setup of a task that needs none."""
    return task


def _ray_pool() -> ModuleType:
    """rvos_core.ray_pool; a ConfigError when Ray, an optional extra, is not installed."""
    try:
        from rvos_core import ray_pool
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise ConfigError(
            "EXECUTOR=ray needs Ray, which is not installed: make env-ray "
            "(env/requirements-ray.txt)"
        ) from None
    return ray_pool


def map_work(work: Work[T, R], workers: int) -> list[R]:
    """``[task(item) for item in work.items]`` on the executor of ``EXECUTOR``: with Ray, on as
    many workers as its cluster holds (rvos_core.ray_pool); locally over ``workers`` processes
    (``map_videos``)."""
    if executor() == "ray":
        return _ray_pool().map_on_ray(work)
    return _map_local(work.setup(), work.items, workers, work.desc, work.unit)


def map_videos(
    task: Callable[[T], R], items: Sequence[T], workers: int, desc: str, unit: str = "video"
) -> list[R]:
    """``[task(item) for item in items]`` on the executor of ``EXECUTOR`` (``map_work``), over
    ``workers`` local processes when workers > 1 (``task`` must then be picklable: a module-level
    function or a partial of one).

    The first failure cancels the remaining work and is raised here (errors of rvos_core.errors
    cross the process boundary intact). Work finished before it stays finished: stages record
    each video in their run folder, so the same command resumes.
    """
    return map_work(Work(partial(given, task), items, desc, unit), workers)


def _map_local(
    task: Callable[[T], R], items: Sequence[T], workers: int, desc: str, unit: str
) -> list[R]:
    """``map_videos`` here: in this process, or over ``workers`` spawned processes."""
    if workers <= 1 or len(items) <= 1:
        return [task(item) for item in progress(items, desc=desc, total=len(items), unit=unit)]
    results: dict[int, R] = {}
    with (
        ProcessPoolExecutor(
            min(workers, len(items)), mp_context=get_context("spawn"), initializer=init_worker
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
    """Call ``task(video_id)`` for every id, here or over ``workers`` local processes (see
    map_videos), whatever ``EXECUTOR`` says: ``task`` may hold what cannot leave this machine."""
    _map_local(task, video_ids, workers, desc, "video")
