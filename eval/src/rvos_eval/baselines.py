"""Baselines that read no words, for the floor of what a referring model learned.

``largest target``: every expression of a video gets the exact mask of the largest of the targets
its video's expressions refer to (the most pixels over the video's frames; ties: the first in meta
order). It segments perfectly and never reads the expression: on Ref-YouTube-VOS-style splits it
is right for the expressions of one object per video.
"""

from __future__ import annotations

from pathlib import Path

from rvos_core.atomic import write_bytes
from rvos_core.data import Dataset
from rvos_core.masks import encode_mask_png
from rvos_eval import mevis

LARGEST_TARGET = "largest target"


def write_largest_target(dataset: Dataset, folder: Path) -> Path:
    """The "largest target" predictions of ``dataset`` (a split with ground truth, as
    ``mevis.dataset_tasks`` reads it) as ``folder/<video>/<exp_id>/<frame>.png``."""
    for task in mevis.dataset_tasks(dataset, folder):
        truth = mevis.expression_truth(task)
        largest = max(truth.values(), key=lambda masks: int(masks.sum()))
        for exp_id in truth:
            for frame, mask in zip(task.frames, largest, strict=True):
                write_bytes(folder / task.video / exp_id / f"{frame}.png", encode_mask_png(mask))
    return folder
