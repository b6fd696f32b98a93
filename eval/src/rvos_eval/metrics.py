"""Region similarity J and boundary measure F, exactly as the official DAVIS code, without its cost.

Same numbers as davis2017-evaluation ``db_eval_iou`` and ``db_eval_boundary`` (commit ac7c43f;
MeViS ships a byte-identical copy), see spec/evaluation.md §3.1-3.2. Both measures are ratios of
integer counts (FrameCounts), computed here from the same counts with the same float operations:

* a frame where both masks are empty is J = F = 1 with no work; otherwise both masks are cropped to
  the bounding box of their union plus one pixel (no boundary pixel can lie outside it);
* the boundary map (``_seg2bmap``) marks the 2x2 windows that are not constant (windows clipped at
  the image edge), which four byte operations compute;
* instead of dilating both boundary maps with the disk, each boundary pixel asks an integral image
  of the other map whether one of the disk's rectangles holds a boundary pixel (see disk.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rvos_eval.disk import Disk, disk

BOUND_TH = 0.008  # the official default boundary tolerance (fraction of the image diagonal)


@dataclass(frozen=True)
class FrameCounts:
    """The integers behind J and F of one frame (void pixels excluded everywhere).

    Attributes:
        intersection, union: pixels of pred AND gt, pred OR gt.
        n_pred_boundary, n_gt_boundary: pixels of the two boundary maps.
        pred_boundary_matched: prediction boundary pixels within the disk of a GT boundary pixel.
        gt_boundary_matched: GT boundary pixels within the disk of a prediction boundary pixel.
    """

    intersection: int
    union: int
    n_pred_boundary: int
    n_gt_boundary: int
    pred_boundary_matched: int
    gt_boundary_matched: int

    @property
    def j(self) -> float:
        """Jaccard index; 1 when the union is empty."""
        return 1.0 if self.union == 0 else self.intersection / self.union

    @property
    def f(self) -> float:
        """Boundary F-measure with the official cases on empty boundary maps."""
        n_pred, n_gt = self.n_pred_boundary, self.n_gt_boundary
        if n_pred == 0 or n_gt == 0:
            precision, recall = (1, int(n_gt == 0)) if n_pred == 0 else (0, 1)
        else:
            precision = self.pred_boundary_matched / float(n_pred)
            recall = self.gt_boundary_matched / float(n_gt)
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)


EMPTY = FrameCounts(0, 0, 0, 0, 0, 0)


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> float:
    """Disk radius in pixels: ``bound_th`` if >= 1, else ceil(bound_th * image diagonal)."""
    if not bound_th > 0:
        raise ValueError(f"bound_th must be positive, got {bound_th}")
    if bound_th >= 1:
        return float(bound_th)
    height, width = (int(s) for s in shape)
    return float(math.ceil(bound_th * math.sqrt(height * height + width * width)))


def frame_counts(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> FrameCounts:
    """Counts of one frame. gt, pred, void: [H, W], any dtype, non-zero = set."""
    if gt.ndim != 2 or gt.shape != pred.shape or (void is not None and void.shape != gt.shape):
        raise ValueError(f"masks must share one [H, W] shape: {gt.shape}, {pred.shape}")
    g, p = as_binary(gt), as_binary(pred)
    if void is not None:
        keep = np.logical_not(void).view(np.uint8)
        g, p = cv2.bitwise_and(g, keep), cv2.bitwise_and(p, keep)
    return binary_counts(g, p, disk(boundary_radius(gt.shape, bound_th)))


def frame_jf(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> tuple[float, float]:
    """(J, F) of one frame: db_eval_iou(gt, pred, void), db_eval_boundary(gt, pred, void)."""
    counts = frame_counts(gt, pred, void, bound_th)
    return counts.j, counts.f


def video_jf(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F, float64 [T] each, of stacks gt, pred, void: [T, H, W]."""
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError(f"stacks must share one [T, H, W] shape: {gt.shape}, {pred.shape}")
    counts = [
        frame_counts(gt[t], pred[t], None if void is None else void[t], bound_th)
        for t in range(gt.shape[0])
    ]
    return np.array([c.j for c in counts]), np.array([c.f for c in counts])


def as_binary(mask: np.ndarray) -> np.ndarray:
    """uint8 [H, W] of 0 / 1, C-contiguous (a view when ``mask`` already is a contiguous bool)."""
    if mask.dtype != np.bool_:
        mask = mask != 0
    return np.ascontiguousarray(mask).view(np.uint8)


def binary_counts(g: np.ndarray, p: np.ndarray, footprint: Disk) -> FrameCounts:
    """Counts of uint8 0/1 masks g, p: [H, W] (void already removed), disk ``footprint``."""
    union = cv2.bitwise_or(g, p)
    box, union_count = union_box(union)
    if box is None:
        return EMPTY
    rows, cols = slice(box[0], box[1]), slice(box[2], box[3])
    g, p = g[rows, cols], p[rows, cols]
    intersection = cv2.countNonZero(cv2.bitwise_and(g, p))
    g_map, g_points = padded_boundary(g, footprint.reach)
    p_map, p_points = padded_boundary(p, footprint.reach)
    pred_matched = gt_matched = 0
    if g_points.size and p_points.size:
        width = g_map.shape[1] + 1
        pred_matched = footprint.matched(cv2.integral(g_map).ravel(), width, p_points)
        gt_matched = footprint.matched(cv2.integral(p_map).ravel(), width, g_points)
    return FrameCounts(
        intersection, union_count, p_points.size, g_points.size, pred_matched, gt_matched
    )


def union_box(union: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
    """Bounding box (y0, y1, x0, x1) of ``union`` [H, W] grown by one pixel and clipped (None if
    empty), and the number of set pixels."""
    sums = cv2.reduce(union, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    rows = _span(sums)
    if rows is None:
        return None, 0
    cols = _span(cv2.reduce(union[rows[0] : rows[1]], 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S))
    assert cols is not None
    height, width = union.shape
    box = (
        max(rows[0] - 1, 0),
        min(rows[1] + 1, height),
        max(cols[0] - 1, 0),
        min(cols[1] + 1, width),
    )
    return box, int(sums.sum())


def _span(sums: np.ndarray) -> tuple[int, int] | None:
    """First and one-past-last index of the non-zero entries of ``sums``."""
    nonzero = np.flatnonzero(sums)
    return (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else None


def padded_boundary(seg: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Boundary map of uint8 0/1 ``seg`` [h, w] inside a zero frame of ``pad`` pixels.

    Returns the map, uint8 0/1 [h + 2 pad, w + 2 pad], and the flat indices of its pixels in the
    map's integral image ([h + 2 pad + 1, w + 2 pad + 1], one leading zero row and column).
    """
    height, width = seg.shape
    out = np.zeros((height + 2 * pad, width + 2 * pad), np.uint8)
    boundary_into(seg, out[pad : pad + height, pad : pad + width])
    flat = np.flatnonzero(out.view(np.bool_))
    return out, flat + flat // out.shape[1]


def boundary_into(seg: np.ndarray, out: np.ndarray) -> None:
    """Write the official ``_seg2bmap`` of uint8 0/1 ``seg`` [h, w] into zeroed ``out`` [h, w]
    (``out`` may be a view of a larger buffer; OpenCV writes into it in place).

    A pixel is boundary iff its 2x2 window (itself, right, below, below-right; clipped at the
    image edge) is not constant: H(y, x) | H(y + 1, x) | V(y, x) with H, V the horizontal and
    vertical neighbour XORs; the last row keeps H, the last column V, the corner stays 0.
    """
    height, width = seg.shape
    if width > 1:
        horizontal = cv2.bitwise_xor(seg[:, :-1], seg[:, 1:])
        out[-1, :-1] = horizontal[-1]
    if height > 1:
        vertical = cv2.bitwise_xor(seg[:-1, :], seg[1:, :])
        out[:-1, -1] = vertical[:, -1]
    if height > 1 and width > 1:
        either = cv2.bitwise_or(horizontal[:-1], horizontal[1:])
        cv2.bitwise_or(either, vertical[:, :-1], dst=out[:-1, :-1])
