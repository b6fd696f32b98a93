"""Ref-DAVIS17: the DAVIS unsupervised protocol per annotator run, reported as the mean of the four.

ReferFormer's convention (``inference_davis.py``, ``scripts/dist_test_davis.sh``, issue #30),
followed by MUTR, SOC and later work: for annotator run a (anno_0..anno_3) the expressions
``4k + a`` of a video (object k, see rvos_core.data.refdavis) are predicted separately and merged
into one indexed PNG per frame, object k as label k + 1; each run is scored with the DAVIS
unsupervised protocol (davis.py) against the Annotations PNGs; the reported J&F, J and F are the
arithmetic means of the four runs' numbers.

Merging a run folder's per-expression masks: a pixel belongs to the objects whose mask holds it;
where several do, ReferFormer takes the argmax of the probabilities (torch.argmax: ties go to the
lowest object). With stored probabilities (probs/) the same rule is applied to them; without, the
lowest object wins. (ReferFormer keeps probabilities >= 0.5, a run folder's masks are > 0.5: they
differ only on pixels at exactly 0.5.) ReferFormer's own output folder (``anno_<a>/<video>/<frame>.png``,
indexed) is read as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.data.refdavis import RUNS, annotation_dir, annotator_runs
from rvos_core.parallel import map_videos
from rvos_eval.davis import ObjectScore, evaluate_unsupervised, read_ground_truth, read_labels
from rvos_eval.readers import png_pixels
from rvos_eval.stats import global_table, mean
from rvos_eval.workers import pool_size

LAYOUTS = ("run", "referformer")


def merge_objects(
    masks: Sequence[np.ndarray], probs: Sequence[np.ndarray] | None, shape: tuple[int, int]
) -> np.ndarray:
    """uint8 labels [H, W] from K object masks bool [H, W] (object k -> label k + 1).

    Overlaps go to the highest of ``probs`` (uint8 [H, W] each; ties: lowest k), or to the lowest
    k when ``probs`` is None.
    """
    labels = np.zeros(shape, np.uint8)
    if probs is None:
        for k in reversed(range(len(masks))):
            labels[masks[k]] = k + 1
        return labels
    score = np.zeros((len(masks), *shape), np.int16)
    for k, (mask, prob) in enumerate(zip(masks, probs, strict=True)):
        np.add(prob, 1, out=score[k], where=mask, dtype=np.int16)
    best = score.argmax(axis=0)
    claimed = score.max(axis=0) > 0
    labels[claimed] = (best[claimed] + 1).astype(np.uint8)
    return labels


@dataclass(frozen=True)
class VideoTask:
    """One video: its ground truth folder, the expressions of each run, where predictions are."""

    video: Video
    annotations: Path
    runs: tuple[tuple[str, ...], ...]
    predictions: Path
    layout: str
    use_probs: bool = False


def _run_labels(task: VideoTask, a: int, shape: tuple[int, int]) -> np.ndarray:
    """Predicted labels uint8 [T, H, W] of annotator run ``a`` of one video."""
    video = task.video
    if task.layout == "referformer":
        folder = task.predictions / RUNS[a] / video.id
        return read_labels(folder, video.frames, shape, "prediction PNG")
    from rvos_core.runfolder import Run  # imported where a run folder is read only

    run = Run(task.predictions)
    exp_ids = task.runs[a]
    out = np.empty((len(video.frames), *shape), np.uint8)
    with ExitStack() as stack:
        reader = None
        if task.use_probs and exp_ids:
            reader = stack.enter_context(run.open_probs(video))
        for t in range(len(video.frames)):
            masks = [run.mask_frame(video, e, t, shape) for e in exp_ids]
            probs = None if reader is None else [reader.frame(e, t, shape) for e in exp_ids]
            out[t] = merge_objects(masks, probs, shape)
    return out


def evaluate_video(task: VideoTask) -> list[ObjectScore]:
    """Rows of every annotator run of one video (a worker's unit of work)."""
    gt = read_ground_truth(task.annotations, task.video.frames)
    shape = gt.labels.shape[1:]
    rows: list[ObjectScore] = []
    for a, name in enumerate(RUNS):
        labels = _run_labels(task, a, shape)
        source = task.predictions / (name if task.layout == "referformer" else "Annotations")
        rows += evaluate_unsupervised(task.video.id, gt, labels, source / task.video.id, run=name)
    return rows


@dataclass(frozen=True)
class RefDavisResult:
    """Rows (run by run, videos sorted), each run's global table, the mean over runs."""

    objects: tuple[ObjectScore, ...]

    def run_table(self, run: str) -> dict[str, float]:
        rows = [o for o in self.objects if o.run == run]
        return global_table([o.j for o in rows], [o.f for o in rows])

    @property
    def tables(self) -> dict[str, dict[str, float]]:
        return {run: self.run_table(run) for run in RUNS}

    @property
    def mean_over_runs(self) -> dict[str, float]:
        tables = self.tables.values()
        return {key: mean([t[key] for t in tables]) for key in ("J&F-Mean", "J-Mean", "F-Mean")}


def tasks_for(
    dataset: Dataset, predictions: Path, layout: str, use_probs: bool = False
) -> list[VideoTask]:
    """One task per video of ``dataset`` (a Ref-DAVIS17 split)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    return [
        VideoTask(
            v, annotation_dir(dataset, v.id), annotator_runs(v), predictions, layout, use_probs
        )
        for v in dataset
    ]


def mask_pixels(tasks: Sequence[VideoTask]) -> int:
    """Mask pixels an evaluation of ``tasks`` reads: per frame the truth and one prediction per
    annotator run, frames of the size of the first video's first annotation PNG."""
    frames = sum(len(t.video.frames) for t in tasks) * (1 + len(RUNS))
    first = tasks[0].annotations / f"{tasks[0].video.frames[0]}.png" if tasks else None
    return 0 if first is None else frames * png_pixels(first)


def evaluate(
    dataset: Dataset,
    predictions: Path,
    layout: str,
    use_probs: bool = False,
    workers: int | None = 1,
) -> RefDavisResult:
    """Evaluate a run folder (layout "run") or ReferFormer's output folder ("referformer") in
    ``workers`` processes (None: rvos_eval.workers.pool_size of the set)."""
    tasks = tasks_for(dataset, predictions, layout, use_probs)
    if workers is None:
        workers = pool_size(mask_pixels(tasks))
    per_video = map_videos(evaluate_video, tasks, workers, desc="ref-davis")
    rows = [r for run in RUNS for rows in per_video for r in rows if r.run == run]
    return RefDavisResult(tuple(rows))
