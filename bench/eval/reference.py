"""The official J and F of one frame, computed on the whole frame (the speed baseline and a test oracle).

What davis2017-evaluation ``db_eval_iou`` and ``db_eval_boundary`` compute (commit ac7c43f; MeViS
ships the same file), implemented here from the definition in docs/evaluation.md, not
copied: the boundary map marks every pixel that differs from one of its right, lower and lower-right
neighbours lying inside the image, each map is dilated with ``skimage.morphology.disk`` of radius
``ceil(bound_th * diagonal)`` by ``cv2.dilate`` over the whole frame, and the boundary pixels of one
map that fall in the dilation of the other are counted. The official boundary routine can also
rescale its map to another size; ``db_eval_boundary`` never asks for that, so it is not here.

Independent of rvos_eval on purpose: the benchmark and the tests check that both agree exactly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.morphology import disk

NEIGHBOURS = ((0, 1), (1, 0), (1, 1))  # (dy, dx) of the right, lower and lower-right neighbour


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """db_eval_iou of one frame: |gt AND pred| / |gt OR pred| outside void, 1 if that union is empty.

    gt, pred, void: [H, W], non-zero = set.
    """
    keep = kept(gt.shape, void)
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.count_nonzero((gt | pred) & keep)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred & keep) / union


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    """db_eval_boundary of one frame: F-measure of the two boundary maps matched within the disk.

    gt, pred, void: [H, W], non-zero = set; void pixels are cleared in both masks first.
    """
    keep = kept(gt.shape, void)
    gt_map = boundary_map(gt.astype(bool) & keep)
    pred_map = boundary_map(pred.astype(bool) & keep)
    kernel = disk(radius(gt.shape, bound_th))
    near_gt = cv2.dilate(gt_map.view(np.uint8), kernel).view(bool)
    near_pred = cv2.dilate(pred_map.view(np.uint8), kernel).view(bool)
    precision, recall = precision_recall(
        np.count_nonzero(pred_map & near_gt),
        np.count_nonzero(pred_map),
        np.count_nonzero(gt_map & near_pred),
        np.count_nonzero(gt_map),
    )
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def kept(shape: tuple[int, ...], void: np.ndarray | None) -> np.ndarray:
    """bool [H, W]: the pixels that count (not void)."""
    return np.ones(shape, bool) if void is None else np.logical_not(void)


def radius(shape: tuple[int, ...], bound_th: float) -> float:
    """Disk radius: ``bound_th`` pixels if it is >= 1, else that fraction of the frame diagonal,
    rounded up."""
    if bound_th >= 1:
        return bound_th
    height, width = shape
    return float(math.ceil(bound_th * math.sqrt(height * height + width * width)))


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels of bool ``seg`` [H, W] that differ from a right, lower or lower-right
    neighbour inside the image (so the last row looks right only, the last column down only, and
    the bottom-right pixel is never a boundary)."""
    height, width = seg.shape
    out = np.zeros_like(seg)
    for dy, dx in NEIGHBOURS:
        out[: height - dy, : width - dx] |= seg[: height - dy, : width - dx] != seg[dy:, dx:]
    return out


def precision_recall(pred_hits: int, n_pred: int, gt_hits: int, n_gt: int) -> tuple[float, float]:
    """Share of each map's boundary pixels matched by the other; an empty map counts as fully
    precise (prediction) or fully recalled (truth), and is 0 on the other side."""
    if n_pred == 0 or n_gt == 0:
        return float(n_pred == 0), float(n_gt == 0)
    return pred_hits / n_pred, gt_hits / n_gt
