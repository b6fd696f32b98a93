"""DAVIS-2017 protocols: semi-supervised and unsupervised (docs/evaluation.md).

As davis2017-evaluation ``DAVISEvaluation.evaluate`` (commit ac7c43f) with its readers in codalab
mode (frames = the sequence's annotation PNGs, sorted):

* ground truth: indexed PNGs; label 255 is void; the number of objects is the largest label of the
  *first* frame (later labels above it are ignored);
* predictions: indexed PNGs ``<results>/<sequence>/<frame>.png``, ids 1..N (N = largest id read),
  missing objects padded with empty masks;
* semi-supervised: ``Annotations/480p``, first and last frames dropped (their PNGs never read),
  void counts as background, more predicted ids than objects is an error;
* unsupervised (Ref-DAVIS17): ``Annotations_unsupervised/480p``, every frame, void excluded from J
  and F, at most 20 predicted ids, J and F of every (predicted id, object) pair, Hungarian matching
  maximising the mean over frames of (J + F) / 2; rows are named by the k-th matched pair in
  increasing predicted id (a cosmetic quirk of the official code kept for comparability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rvos_core.errors import InputError
from rvos_core.parallel import map_videos
from rvos_eval.metrics import FrameCounts, frame_counts
from rvos_eval.readers import png_pixels, read_index_png
from rvos_eval.stats import Stats, global_table, statistics
from rvos_eval.workers import pool_size

TASKS = ("semi-supervised", "unsupervised")
MAX_PROPOSALS = 20
VOID = 255
FOLDER_NAMES = ("DAVIS", "davis", "DAVIS2017", "ref-davis/DAVIS")
SPLIT_ALIASES = {"valid": "val"}


@dataclass(frozen=True, eq=False)
class ObjectScore:
    """Statistics of one evaluated object (one row of the official per-sequence table).

    Attributes:
        name: ``<sequence>_<k>``.
        frames: ids of the evaluated frames; j_per_frame, f_per_frame: float64 [T].
        pred_id, gt_id: the matched pair (unsupervised), else the object's id for both.
        run: the Ref-DAVIS17 annotator run (anno_0..anno_3), None otherwise.
    """

    name: str
    sequence: str
    j: Stats
    f: Stats
    frames: tuple[str, ...]
    j_per_frame: np.ndarray = field(repr=False)
    f_per_frame: np.ndarray = field(repr=False)
    pred_id: int
    gt_id: int
    run: str | None = None


@dataclass(frozen=True)
class GroundTruth:
    """One sequence's annotations: labels uint8 [T, H, W] (void set to 0), void bool [T, H, W]."""

    frames: tuple[str, ...]
    labels: np.ndarray
    void: np.ndarray
    objects: int


def find_root(data: Path) -> Path:
    """The DAVIS folder (holding ImageSets/) in DATA, or DATA itself."""
    for candidate in (data, *(data / name for name in FOLDER_NAMES)):
        if (candidate / "ImageSets").is_dir():
            return candidate
    raise InputError(
        data, f"no DAVIS here: expected ImageSets/ in it or in {', '.join(FOLDER_NAMES)}"
    )


def sequence_names(root: Path, split: str) -> list[str]:
    """Sequences of ``split`` (val, train, ...; 'valid' means val) from ImageSets/2017/<split>.txt."""
    split = SPLIT_ALIASES.get(split, split)
    path = root / "ImageSets" / "2017" / f"{split}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise InputError(path, f"split list is missing (found: {', '.join(known) or 'none'})")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise InputError(path, "split list names no sequence")
    return names


def annotation_root(root: Path, task: str) -> Path:
    folder = "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"
    return root / folder / "480p"


def read_ground_truth(folder: Path, frames: Sequence[str] | None = None) -> GroundTruth:
    """Annotations of one sequence: ``frames`` (default: every PNG in ``folder``, sorted)."""
    if frames is None:
        frames = sorted(p.stem for p in folder.glob("*.png"))
        if not frames:
            raise InputError(folder, "no annotation PNGs for this sequence")
    labels = read_labels(folder, frames, None, "annotation PNG")
    void = labels == VOID
    labels[void] = 0
    return GroundTruth(tuple(frames), labels, void, int(labels[0].max()))


def read_labels(
    folder: Path, frames: Sequence[str], shape: tuple[int, int] | None, what: str
) -> np.ndarray:
    """uint8 [T, H, W] of the indexed PNGs ``<folder>/<frame>.png`` (one size for all)."""
    first = read_index_png(folder / f"{frames[0]}.png", shape, what)
    out = np.empty((len(frames), *first.shape), np.uint8)
    out[0] = first
    for t, frame in enumerate(frames[1:], start=1):
        out[t] = read_index_png(folder / f"{frame}.png", first.shape, what)
    return out


def _object_masks(labels: np.ndarray, count: int) -> list[np.ndarray]:
    """bool [H, W] of ids 1..count in one label frame [H, W]."""
    return [labels == k for k in range(1, count + 1)]


def semi_supervised(
    gt: GroundTruth, pred: np.ndarray, source: Path
) -> tuple[np.ndarray, np.ndarray]:
    """J, F float64 [objects, T - 2] of predictions uint8 [T - 2, H, W] for frames 1..T-2."""
    n_pred = int(pred.max()) if pred.size else 0
    if n_pred > gt.objects:
        raise InputError(
            source,
            f"predictions hold object id {n_pred}, the first annotation frame has {gt.objects} "
            "objects (semi-supervised predictions are indexed PNGs with ids 1..N)",
        )
    labels = gt.labels[1:-1]
    j = np.zeros((gt.objects, labels.shape[0]))
    f = np.zeros_like(j)
    for t in range(labels.shape[0]):
        truth, guess = _object_masks(labels[t], gt.objects), _object_masks(pred[t], gt.objects)
        for k in range(gt.objects):
            counts = frame_counts(truth[k], guess[k])
            j[k, t], f[k, t] = counts.j, counts.f
    return j, f


def unsupervised_pairs(
    gt: GroundTruth, pred: np.ndarray, source: Path
) -> tuple[np.ndarray, np.ndarray]:
    """J, F float64 [proposals, objects, T] of every (predicted id, object) pair, void excluded.

    proposals = max(largest predicted id, objects): missing ids are empty proposals.
    """
    n_pred = int(pred.max()) if pred.size else 0
    if n_pred > MAX_PROPOSALS:
        raise InputError(
            source,
            f"predictions hold object id {n_pred}, at most {MAX_PROPOSALS} are allowed "
            "(predictions must be indexed PNGs with ids 1..N; an 'L' 0/255 mask reads as id 255)",
        )
    proposals = max(n_pred, gt.objects)
    shape = (proposals, gt.objects, gt.labels.shape[0])
    j, f = np.zeros(shape), np.zeros(shape)
    for t in range(gt.labels.shape[0]):
        keep = ~gt.void[t]
        truth = [m & keep for m in _object_masks(gt.labels[t], gt.objects)]
        guess = [m & keep for m in _object_masks(pred[t], proposals)]
        for a, proposal in enumerate(guess):
            for b, obj in enumerate(truth):
                counts: FrameCounts = frame_counts(obj, proposal)
                j[a, b, t], f[a, b, t] = counts.j, counts.f
    return j, f


def match(j: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of [proposals, objects, T] scores: (proposal rows, object cols)."""
    from scipy.optimize import linear_sum_assignment  # 0.2 s to import: only where it is used

    score = (np.mean(j, axis=2) + np.mean(f, axis=2)) / 2
    return linear_sum_assignment(-score)


def object_scores(
    sequence: str,
    frames: Sequence[str],
    j: np.ndarray,
    f: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    run: str | None = None,
) -> list[ObjectScore]:
    """Rows ``<sequence>_<k>`` for per-object J, F [rows, T] and their (pred id, gt id) pairs."""
    return [
        ObjectScore(
            name=f"{sequence}_{k + 1}",
            sequence=sequence,
            j=statistics(j[k]),
            f=statistics(f[k]),
            frames=tuple(frames),
            j_per_frame=j[k],
            f_per_frame=f[k],
            pred_id=pair[0],
            gt_id=pair[1],
            run=run,
        )
        for k, pair in enumerate(pairs)
    ]


def evaluate_unsupervised(
    sequence: str, gt: GroundTruth, pred: np.ndarray, source: Path, run: str | None = None
) -> list[ObjectScore]:
    """Unsupervised rows of one sequence from predicted labels uint8 [T, H, W]."""
    j, f = unsupervised_pairs(gt, pred, source)
    rows, cols = match(j, f)
    pairs = [(int(r) + 1, int(c) + 1) for r, c in zip(rows, cols, strict=True)]
    return object_scores(sequence, gt.frames, j[rows, cols], f[rows, cols], pairs, run)


@dataclass(frozen=True)
class SequenceTask:
    """One sequence: its annotation folder, its prediction folder, the task."""

    name: str
    annotations: Path
    predictions: Path
    task: str


def evaluate_sequence(task: SequenceTask) -> list[ObjectScore]:
    """Rows of one sequence (a worker's unit of work)."""
    gt = read_ground_truth(task.annotations)
    if task.task == "semi-supervised":
        frames = gt.frames[1:-1]
        pred = (
            read_labels(task.predictions, frames, gt.labels.shape[1:], "prediction PNG")
            if frames
            else np.zeros((0, *gt.labels.shape[1:]), np.uint8)
        )
        j, f = semi_supervised(gt, pred, task.predictions)
        pairs = [(k, k) for k in range(1, gt.objects + 1)]
        return object_scores(task.name, frames, j, f, pairs)
    pred = read_labels(task.predictions, gt.frames, gt.labels.shape[1:], "prediction PNG")
    return evaluate_unsupervised(task.name, gt, pred, task.predictions)


@dataclass(frozen=True)
class DavisResult:
    """Rows in sequence order and the global table (evaluation_method.py)."""

    objects: tuple[ObjectScore, ...]

    @property
    def table(self) -> dict[str, float]:
        return global_table([o.j for o in self.objects], [o.f for o in self.objects])


def mask_pixels(tasks: Sequence[SequenceTask]) -> int:
    """Mask pixels an evaluation of ``tasks`` reads: annotation PNGs x 2 x H x W of the first one."""
    files = [sorted(t.annotations.glob("*.png")) for t in tasks]
    first = next((f[0] for f in files if f), None)
    return 2 * sum(map(len, files)) * (0 if first is None else png_pixels(first))


def evaluate(
    root: Path, split: str, task: str, results: Path, workers: int | None = 1
) -> DavisResult:
    """Evaluate the indexed PNGs under ``results`` (<sequence>/<frame>.png) on DAVIS ``root``
    in ``workers`` processes (None: rvos_eval.workers.pool_size of the set)."""
    if task not in TASKS:
        raise InputError(None, f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if not results.is_dir():
        raise InputError(results, "prediction folder does not exist")
    annotations = annotation_root(root, task)
    tasks = [
        SequenceTask(name, annotations / name, results / name, task)
        for name in sequence_names(root, split)
    ]
    if workers is None:
        workers = pool_size(mask_pixels(tasks))
    rows = map_videos(evaluate_sequence, tasks, workers, desc=f"davis {task}", unit="sequence")
    return DavisResult(tuple(r for sequence_rows in rows for r in sequence_rows))
