"""The official J and F, written out statement by statement (for the speed comparison only).

Follows davis2017-evaluation ``davis2017/metrics.py`` (commit ac7c43f): ``db_eval_iou`` and
``db_eval_boundary`` -> ``f_measure`` -> ``_seg2bmap``, dilation with the skimage disk by
``cv2.dilate`` on whole frames. Our own code; it must give the same numbers as rvos_eval.metrics.
"""

from __future__ import annotations

import cv2
import numpy as np


def disk(radius: float) -> np.ndarray:
    """skimage.morphology.disk(radius) as uint8."""
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return np.array((xx**2 + yy**2) <= radius**2, dtype=np.uint8)


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """db_eval_iou of one frame [H, W]."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    void = np.zeros_like(pred) if void is None else void.astype(bool)
    inters = np.sum((pred & gt) & np.logical_not(void), axis=(-2, -1))
    union = np.sum((pred | gt) & np.logical_not(void), axis=(-2, -1))
    return 1 if np.isclose(union, 0) else inters / union


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map of a mask [H, W] (D. Martin's routine, no resizing)."""
    seg = seg.astype(bool)
    seg[seg > 0] = 1
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    """db_eval_boundary of one frame [H, W] (f_measure(pred, gt, void))."""
    void = np.zeros_like(pred).astype(bool) if void is None else void.astype(bool)
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    fg_boundary = seg2bmap(pred * np.logical_not(void))
    gt_boundary = seg2bmap(gt * np.logical_not(void))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(radius))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(radius))
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)
