"""Helpers shared by the core tests (``tree_digest`` is rvos_core.testing's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.errors import InputError
from rvos_core.masks import quantize_probs
from rvos_core.runfolder import Run, RunRecord, RunWriter, VideoResult, VideoWriter
from rvos_core.runner import Stage
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
        raise InputError(Path(f"/data/item{value}.png"), "negative item")
    return value * value


@dataclass
class ConstantStage(Stage):
    """A trivial stage for the runner tests: every mask is ``value``, scores rise with t (or no
    scores and key frame 0); it notes the calls it gets and may refuse its inputs."""

    value: bool = True
    source: Run | None = None
    scores: bool = True
    refuse: bool = False
    name: str = "constant"
    calls: list[str] = field(default_factory=list)
    dataset: Dataset | None = None

    @property
    def record(self) -> RunRecord:
        return RunRecord(
            producer="test.constant",
            value_domain="binary",
            has_scores=self.scores,
            has_probs=False,
            inputs=() if self.source is None else (self.source.input_record(),),
            config={"value": self.value},
        )

    @property
    def inputs(self) -> list[Path]:
        return [] if self.source is None else [self.source.root]

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        self.calls.append("check")
        self.dataset = dataset
        if self.refuse:
            raise InputError(dataset.meta_path, "refused by the stage")

    def prepare(self, videos: Sequence[Video]) -> None:
        self.calls.append(f"prepare {len(videos)}")

    def write_video(self, out: VideoWriter) -> None:
        video = out.video
        count = len(video.frames)
        for exp_id in video.exp_ids:
            out.write_masks(exp_id, np.full((count, *video.frame_size()), self.value))
            if self.scores:
                out.write_scores(exp_id, [t / count for t in range(count)])

    def key_frames(self) -> dict[str, Any] | None:
        if self.scores or self.dataset is None:
            return None
        first = {"index_info": {"class_index": 0}}
        return {v.id: {e: first for e in v.exp_ids} for v in self.dataset}
