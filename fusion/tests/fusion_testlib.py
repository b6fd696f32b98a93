"""Helpers shared by the fusion tests (hand-made runs and masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvos_core.data import Dataset
from rvos_core.masks import quantize_probs
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_fusion.vote import VoteConfig, run_vote


def make_run(
    root: Path,
    dataset: Dataset,
    masks: dict[str, np.ndarray],
    probs: dict[str, np.ndarray] | None = None,
    scores: dict[str, list[float]] | None = None,
    domain: str = "binary",
) -> Run:
    """A complete run of ``dataset`` (one video) from per-expression arrays [T, H, W]."""
    meta = {
        "producer": "test",
        "value_domain": domain,
        "has_scores": scores is not None,
        "has_probs": probs is not None,
    }
    writer = RunWriter(root, dataset, meta)
    video = next(iter(dataset))
    q = {e: quantize_probs(p) for e, p in probs.items()} if probs is not None else None
    writer.write_video(video, VideoResult(masks=masks, scores=scores, probs=q))
    assert writer.finalize()
    return Run(root)


def bits(*rows: str) -> np.ndarray:
    """bool [T, 1, W] from strings like "0110" (one per frame)."""
    return np.array([[[c == "1" for c in row]] for row in rows])


def voted(runs: list[Run], dataset: Dataset, config: VoteConfig, out: Path) -> Run:
    """Vote ``runs`` into ``out`` (all videos, one process) and open the result."""
    assert run_vote(runs, dataset, config, out)
    return Run(out)
