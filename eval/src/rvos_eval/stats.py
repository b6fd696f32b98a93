"""Per-object statistics (mean, recall, decay) and the DAVIS global table.

``statistics`` is davis2017-evaluation ``db_statistics`` (docs/evaluation.md), including its
NumPy-2 behaviour: the five bin boundaries are cast to uint8 (they wrap beyond 256 frames) and a
bin's end ``ids[i + 1] + 1`` is computed in uint8, so an index of 255 ends the bin at 0 (an empty
last bin gives a NaN decay, e.g. for exactly 256 frames).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MEASURES = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass(frozen=True)
class Stats:
    """Mean, recall (fraction of frames above 0.5) and decay (first quarter minus last)."""

    mean: float
    recall: float
    decay: float


def _nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return float(np.nanmean(values))


def decay_bins(n: int) -> list[tuple[int, int]]:
    """The four (start, stop) slices of ``db_statistics`` for ``n`` frames (uint8 arithmetic)."""
    ids = np.round(np.linspace(1, n, 5) + 1e-10) - 1
    wrapped = [int(i) % 256 for i in ids]
    return [(wrapped[i], (wrapped[i + 1] + 1) % 256) for i in range(4)]


def statistics(values: np.ndarray) -> Stats:
    """Statistics of per-frame values float64 [N] (NaN ignored in means; N = 0 gives NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return Stats(float("nan"), float("nan"), float("nan"))
    bins = decay_bins(values.size)
    first, last = (values[start:stop] for start, stop in (bins[0], bins[3]))
    return Stats(
        mean=_nanmean(values),
        recall=_nanmean(values > 0.5),
        decay=_nanmean(first) - _nanmean(last),
    )


def mean(values: Sequence[float]) -> float:
    """np.mean of a list (NaN propagates); NaN for an empty list, without a warning."""
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else float("nan")


def global_table(j: Sequence[Stats], f: Sequence[Stats]) -> dict[str, float]:
    """The global table of evaluation_method.py from per-object J and F statistics."""
    j_mean, f_mean = mean([s.mean for s in j]), mean([s.mean for s in f])
    return {
        "J&F-Mean": (j_mean + f_mean) / 2.0,
        "J-Mean": j_mean,
        "J-Recall": mean([s.recall for s in j]),
        "J-Decay": mean([s.decay for s in j]),
        "F-Mean": f_mean,
        "F-Recall": mean([s.recall for s in f]),
        "F-Decay": mean([s.decay for s in f]),
    }
