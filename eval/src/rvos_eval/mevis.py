"""MeViS: the protocol of henghuiding/MeViS ``tools/eval_mevis.py`` (docs/evaluation.md).

Per (video, expression): the ground truth of a frame is the union of the expression's ``anno_id``
masks (COCO RLE in mask_dict.json; null = absent), the prediction is
``<predictions>/<video>/<exp_id>/<frame>.png`` read as grayscale with any non-zero pixel foreground,
every listed frame is scored (no void, no frame dropped) and the expression's J and F are the means
over its frames. A video without a prediction folder scores (0, 0) for each of its expressions, as
in the official script; a missing frame PNG inside an existing video folder is an error. Final
J and F are means over expressions, J&F their mean.

The same protocol scores Ref-YouTube-VOS splits that hold annotations (train, a held-out part of
it, the generated world's valid): the ground truth of a frame is then its palette PNG
``<split>/Annotations/<video>/<frame>.png``, the expression's object its label (``obj_id``), every
listed frame scored. (The official valid / test numbers come from the challenge server.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_core.parallel import map_videos
from rvos_eval.metrics import frame_counts
from rvos_eval.readers import decode_rles, read_gray_mask, read_index_png
from rvos_eval.stats import mean
from rvos_eval.workers import pool_size


@dataclass(frozen=True, eq=False)
class ExpressionScore:
    """Score of one expression; per-frame arrays are float64 [T], None for a missing video."""

    video: str
    exp_id: str
    j: float
    f: float
    j_per_frame: np.ndarray | None
    f_per_frame: np.ndarray | None

    @property
    def missing(self) -> bool:
        return self.j_per_frame is None


@dataclass(frozen=True)
class MevisResult:
    """All expression scores (videos sorted, expressions in meta order) and the final numbers."""

    expressions: tuple[ExpressionScore, ...]

    @property
    def j(self) -> float:
        return mean([e.j for e in self.expressions])

    @property
    def f(self) -> float:
        return mean([e.f for e in self.expressions])

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    @property
    def missing_videos(self) -> list[str]:
        return sorted({e.video for e in self.expressions if e.missing})


@dataclass(frozen=True)
class VideoTask:
    """Everything a worker needs for one video (the RLE lists of its anno_ids only)."""

    video: str
    frames: tuple[str, ...]
    expressions: tuple[tuple[str, tuple[str, ...]], ...]  # (exp_id, anno_ids)
    rles: dict[str, list[Any]]
    predictions: Path
    mask_dict: Path
    annotations: Path | None = None  # Ref-YouTube-VOS: the video's palette PNGs (anno ids: labels)


def build_tasks(videos: Iterable[Video], mask_dict: Path, predictions: Path) -> list[VideoTask]:
    """One task per video; every anno_id must be in mask_dict.json with one entry per frame."""
    masks = load_json(mask_dict)
    if not isinstance(masks, dict):
        raise InputError(
            mask_dict, "mask_dict.json must be an object {anno_id: [RLE or null, ...]}"
        )
    tasks = []
    for video in videos:
        rles: dict[str, list[Any]] = {}
        for exp in video.expressions:
            for anno in exp.anno_ids:
                entry = masks.get(anno)
                if not isinstance(entry, list) or len(entry) != len(video.frames):
                    problem = (
                        "is missing" if entry is None else "is not a list of one RLE per frame"
                    )
                    raise InputError(
                        mask_dict,
                        f"anno_id {anno} (video {video.id}, expression {exp.id}) {problem}; "
                        f"expected {len(video.frames)} entries",
                    )
                rles[anno] = entry
        expressions = tuple((e.id, e.anno_ids) for e in video.expressions)
        tasks.append(VideoTask(video.id, video.frames, expressions, rles, predictions, mask_dict))
    return tasks


def build_palette_tasks(
    videos: Iterable[Video], annotations: Path, predictions: Path
) -> list[VideoTask]:
    """One task per video of a Ref-YouTube-VOS split with ``annotations`` (its Annotations
    folder); every expression must name its objects (``obj_id``)."""
    tasks = []
    for video in videos:
        for exp in video.expressions:
            if not exp.obj_ids:
                raise InputError(
                    annotations, f"video {video.id}, expression {exp.id} has no obj_id to score"
                )
        expressions = tuple((e.id, tuple(map(str, e.obj_ids))) for e in video.expressions)
        folder = annotations / video.id
        tasks.append(
            VideoTask(video.id, video.frames, expressions, {}, predictions, folder, folder)
        )
    return tasks


def dataset_tasks(dataset: Dataset, predictions: Path) -> list[VideoTask]:
    """The tasks of a MeViS split, or of a Ref-YouTube-VOS split with annotations."""
    if dataset.name == "refytvos":
        annotations = dataset.root / dataset.split / "Annotations"
        if not annotations.is_dir():
            raise InputError(
                annotations,
                "Ref-YouTube-VOS is scored here only on splits with annotations (train, a "
                "held-out part of it, the generated world's valid); the official valid is scored "
                "by the server",
            )
        return build_palette_tasks(dataset, annotations, predictions)
    return build_tasks(dataset, dataset.extra["mask_dict"], predictions)


def _frame_size(task: VideoTask) -> tuple[int, int] | None:
    """(H, W) of the first non-null RLE of the video, or None when every entry is null (with
    annotations: of the first frame's PNG)."""
    if task.annotations is not None:
        return _palette(task, 0, None).shape
    for anno, entries in task.rles.items():
        for t, rle in enumerate(entries):
            if rle is not None:
                size = rle.get("size") if isinstance(rle, dict) else None
                if (
                    not isinstance(size, list)
                    or len(size) != 2
                    or not all(isinstance(s, int) and s > 0 for s in size)
                ):
                    raise InputError(task.mask_dict, f"anno_id {anno}, frame {t}: RLE has no size")
                return int(size[0]), int(size[1])
    return None


class _GroundTruth:
    """Per-frame union of anno_id masks; a frame's RLEs are decoded once, together."""

    def __init__(self, task: VideoTask) -> None:
        self.task = task
        self._t = -1
        self._masks: dict[str, np.ndarray] = {}

    def _decode(self, t: int, shape: tuple[int, int]) -> None:
        present = {a: rles[t] for a, rles in self.task.rles.items() if rles[t] is not None}
        where = [f"anno_id {a}, frame {t} ({self.task.frames[t]})" for a in present]
        masks = decode_rles(list(present.values()), shape, self.task.mask_dict, where)
        self._t, self._masks = t, dict(zip(present, masks, strict=True))

    def union(self, t: int, anno_ids: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
        """bool [H, W] of frame ``t``: the union of ``anno_ids`` (all absent: empty)."""
        if t != self._t:
            self._decode(t, shape)
        out = np.zeros(shape, np.bool_)
        for anno in anno_ids:
            if anno in self._masks:
                out |= self._masks[anno]
        return out


def _palette(task: VideoTask, t: int, shape: tuple[int, int] | None) -> np.ndarray:
    assert task.annotations is not None
    path = task.annotations / f"{task.frames[t]}.png"
    return read_index_png(path, shape, "annotation PNG")


class _PaletteTruth:
    """Ref-YouTube-VOS: a frame's labels from its palette PNG, read once per frame."""

    def __init__(self, task: VideoTask) -> None:
        self.task = task
        self._t = -1
        self._labels = np.zeros((0, 0), np.uint8)

    def union(self, t: int, anno_ids: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
        """bool [H, W] of frame ``t``: the pixels of the labels ``anno_ids``."""
        if t != self._t:
            self._t, self._labels = t, _palette(self.task, t, shape)
        return np.isin(self._labels, [int(a) for a in anno_ids])


def expression_truth(task: VideoTask) -> dict[str, np.ndarray]:
    """The ground truth of every expression of the task's video: exp_id -> bool [T, H, W]."""
    shape = _frame_size(task)
    if shape is None:
        raise InputError(task.mask_dict, f"video {task.video}: no mask gives the frame size")
    truth = _GroundTruth(task) if task.annotations is None else _PaletteTruth(task)
    per_frame = {e: [] for e, _ in task.expressions}
    for t in range(len(task.frames)):
        for exp_id, anno_ids in task.expressions:
            per_frame[exp_id].append(truth.union(t, anno_ids, shape))
    return {exp_id: np.stack(masks) for exp_id, masks in per_frame.items()}


def evaluate_video(task: VideoTask) -> list[ExpressionScore]:
    """Scores of every expression of one video (a worker's unit of work)."""
    folder = task.predictions / task.video
    if not folder.is_dir():
        return [ExpressionScore(task.video, e, 0.0, 0.0, None, None) for e, _ in task.expressions]
    shape = _frame_size(task)
    truth = _GroundTruth(task) if task.annotations is None else _PaletteTruth(task)
    per_frame: dict[str, list[tuple[float, float]]] = {e: [] for e, _ in task.expressions}
    for t, frame in enumerate(task.frames):
        for exp_id, anno_ids in task.expressions:
            pred = read_gray_mask(folder / exp_id / f"{frame}.png", shape)
            shape = pred.shape
            counts = frame_counts(truth.union(t, anno_ids, shape), pred)
            per_frame[exp_id].append((counts.j, counts.f))
    scores = []
    for exp_id, _ in task.expressions:
        values = np.array(per_frame[exp_id], dtype=np.float64).reshape(-1, 2)
        j, f = np.ascontiguousarray(values[:, 0]), np.ascontiguousarray(values[:, 1])
        scores.append(ExpressionScore(task.video, exp_id, float(j.mean()), float(f.mean()), j, f))
    return scores


def mask_pixels(tasks: Sequence[VideoTask]) -> int:
    """Mask pixels an evaluation of ``tasks`` reads: 2 per expression and frame, frames of the
    size of the first video with a ground-truth mask (0 when none has one)."""
    size = next((s for s in map(_frame_size, tasks) if s is not None), None)
    frames = sum(len(t.frames) * len(t.expressions) for t in tasks)
    return 0 if size is None else 2 * frames * size[0] * size[1]


def evaluate(
    videos: Iterable[Video], mask_dict: Path, predictions: Path, workers: int | None = 1
) -> MevisResult:
    """Evaluate ``predictions`` (a folder of <video>/<exp_id>/<frame>.png) on ``videos`` in
    ``workers`` processes (None: rvos_eval.workers.pool_size of the set)."""
    return evaluate_tasks(build_tasks(videos, mask_dict, predictions), predictions, workers)


def evaluate_tasks(
    tasks: Sequence[VideoTask], predictions: Path, workers: int | None = 1
) -> MevisResult:
    """Evaluate the ``tasks`` of ``predictions`` (see ``evaluate``)."""
    if tasks and not any((predictions / t.video).is_dir() for t in tasks):
        raise InputError(
            predictions,
            "holds a folder for no video of the split (expected <video>/<exp_id>/<frame>.png)",
        )
    if workers is None:
        workers = pool_size(mask_pixels(tasks))
    per_video = map_videos(evaluate_video, tasks, workers, desc="mevis")
    return MevisResult(tuple(score for scores in per_video for score in scores))
