"""Evaluate independent work units (videos) in worker processes, results in input order."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import cv2

from rvos_core.errors import InputError
from rvos_core.progress import progress, progress_bar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """One worker per CPU."""
    return max(1, os.cpu_count() or 1)


def _single_threaded() -> None:
    cv2.setNumThreads(1)


def _guarded(task: Callable[[T], R], item: T) -> tuple[str, Any]:
    """Run ``task(item)``; an InputError comes back as data (its path and problem pickle safely)."""
    try:
        return "ok", task(item)
    except InputError as exc:
        return "input-error", (None if exc.path is None else str(exc.path), exc.problem)


def _unwrap(outcome: tuple[str, Any]) -> Any:
    kind, value = outcome
    if kind == "input-error":
        path, problem = value
        raise InputError(None if path is None else Path(path), problem)
    return value


def map_units(
    task: Callable[[T], R], items: Sequence[T], workers: int, desc: str, unit: str = "video"
) -> list[R]:
    """``[task(item) for item in items]`` over ``workers`` processes (module-level ``task``).

    Workers run OpenCV single-threaded. The first error stops the remaining work and is raised.
    """
    if workers <= 1 or len(items) <= 1:
        return [task(item) for item in progress(items, desc=desc, total=len(items), unit=unit)]
    guarded = partial(_guarded, task)
    context = get_context("spawn")
    results: dict[int, R] = {}
    with (
        ProcessPoolExecutor(
            min(workers, len(items)), mp_context=context, initializer=_single_threaded
        ) as pool,
        progress_bar(len(items), desc, unit=unit) as bar,
    ):
        futures = {pool.submit(guarded, item): i for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results[futures[future]] = _unwrap(future.result())
                bar.update(len(done))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return [results[i] for i in range(len(items))]
