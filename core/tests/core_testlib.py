"""Helpers shared by the core tests (``tree_digest`` is rvos_core.testing's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvos_core.data import Dataset
from rvos_core.masks import quantize_probs
from rvos_core.runfolder import RunWriter, VideoResult
from rvos_core.testing import tree_digest as tree_digest

META = {"producer": "test", "value_domain": "probability", "has_scores": True, "has_probs": True}


def result_for(video, seed: int = 0) -> VideoResult:
    rng = np.random.default_rng([seed, len(video.frames)])
    height, width = video.frame_size()
    probs = {
        e: rng.random((len(video.frames), height, width)).astype(np.float32) for e in video.exp_ids
    }
    scores = {e: rng.random(len(video.frames)).tolist() for e in video.exp_ids}
    return VideoResult(
        masks={e: p > 0.5 for e, p in probs.items()},
        scores=scores,
        probs={e: quantize_probs(p) for e, p in probs.items()},
    )


def write_all(root: Path, dataset: Dataset, videos: list[str] | None = None) -> RunWriter:
    writer = RunWriter(root, dataset, META)
    for video_id in writer.todo(videos or list(dataset.videos)):
        writer.write_video(dataset.video(video_id), result_for(dataset.video(video_id)))
    writer.finalize()
    return writer


def square_or_fail(value: int) -> int:
    """A picklable task for the worker-pool tests: value**2, or an InputError for negatives."""
    if value < 0:
        from rvos_core.errors import InputError

        raise InputError(Path(f"/data/item{value}.png"), "negative item")
    return value * value
