"""Region similarity J and boundary measure F, exactly as the official DAVIS code, without its cost.

Same numbers as davis2017-evaluation ``db_eval_iou`` and ``db_eval_boundary`` (commit ac7c43f;
MeViS ships a byte-identical copy), see docs/evaluation.md. Both measures are ratios of
integer counts (FrameCounts), computed here from the same counts with the same float operations:

* a frame where both masks are empty is J = F = 1 with no work; otherwise both masks are cropped to
  the bounding box of their union plus one pixel (no boundary pixel can lie outside it) and merged
  into one byte per pixel (truth in bit 0, prediction in bit 7) inside a zero frame as wide as the
  disk's reach, so that every later step runs once, for both masks, on one contiguous buffer;
* the boundary map (``_seg2bmap``) marks the 2x2 windows that are not constant (windows clipped at
  the image edge), which four flat byte operations compute for both bits at once;
* instead of dilating both boundary maps with the disk, each boundary pixel asks one integral image
  of the merged map whether one of the disk's pieces holds a pixel of the other bit (see disk.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from rvos_eval.disk import Disk, disk

BOUND_TH = 0.008  # the official default boundary tolerance (fraction of the image diagonal)
# The merged crop holds the ground truth in bit 0 and the prediction in bit 7, so a box sum of its
# boundary map is n_gt + 128 n_pred, and its low bits count GT pixels (pieces hold < 128 pixels).
GT_BIT = 1
PRED_BIT = 128
GT_FIELD = PRED_BIT - 1


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


class Box(NamedTuple):
    """The crop, rows y0:y1 and columns x0:x1 of a [height, width] frame."""

    y0: int
    y1: int
    x0: int
    x1: int
    height: int
    width: int


def binary_counts(g: np.ndarray, p: np.ndarray, footprint: Disk) -> FrameCounts:
    """Counts of uint8 0/1 masks g, p: [H, W] (void already removed), disk ``footprint``."""
    box, n_gt, n_pred = union_box(g, p)
    if box is None:
        return EMPTY
    merged = merge(g, p, box, footprint.reach)
    union = cv2.countNonZero(merged)
    bmap = boundary_map(merged, box, footprint.reach)
    pixels, values = boundary_pixels(bmap)
    gt_pixels = int(np.count_nonzero(values & GT_BIT))
    pred_pixels = int(np.count_nonzero(values >= PRED_BIT))
    pred_matched = gt_matched = 0
    if gt_pixels and pred_pixels:
        layout = bmap[: merged.size].reshape(merged.shape)
        pred_missed, gt_missed = missed(layout, pixels, values, footprint)
        pred_matched, gt_matched = pred_pixels - pred_missed, gt_pixels - gt_missed
    return FrameCounts(
        n_gt + n_pred - union, union, pred_pixels, gt_pixels, pred_matched, gt_matched
    )


def union_box(g: np.ndarray, p: np.ndarray) -> tuple[Box | None, int, int]:
    """Bounding box of g OR p ([H, W] uint8 0/1) grown by one pixel and clipped (None if both are
    empty), and the pixel counts of g and p. Reads each mask once, then the rows of the union."""
    g_rows = cv2.reduce(g, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    p_rows = cv2.reduce(p, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    rows = _span(g_rows + p_rows)
    if rows is None:
        return None, 0, 0
    band = cv2.bitwise_or(g[rows[0] : rows[1]], p[rows[0] : rows[1]])
    cols = _span(cv2.reduce(band, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S))
    assert cols is not None
    height, width = g.shape
    box = Box(
        max(rows[0] - 1, 0),
        min(rows[1] + 1, height),
        max(cols[0] - 1, 0),
        min(cols[1] + 1, width),
        height,
        width,
    )
    return box, int(g_rows.sum()), int(p_rows.sum())


def _span(sums: np.ndarray) -> tuple[int, int] | None:
    """First and one-past-last index of the non-zero entries of ``sums``."""
    nonzero = sums.reshape(-1).nonzero()[0]
    return (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else None


def merge(g: np.ndarray, p: np.ndarray, box: Box, pad: int) -> np.ndarray:
    """uint8 [h + 2 pad, w + 2 pad + 1]: the crop of g in bit 0 and of p in bit 7, in a zero frame
    (one column wider on the right, so that an integral image of all columns but the last has the
    layout's row length: a pixel's flat index is also its index in that integral)."""
    height, width = box.y1 - box.y0, box.x1 - box.x0
    rows, cols = slice(box.y0, box.y1), slice(box.x0, box.x1)
    merged = np.zeros((height + 2 * pad, width + 2 * pad + 1), np.uint8)
    inner = merged[pad : pad + height, pad : pad + width]
    cv2.addWeighted(p[rows, cols], PRED_BIT, g[rows, cols], GT_BIT, 0, dst=inner)
    return merged


def boundary_map(merged: np.ndarray, box: Box, pad: int) -> np.ndarray:
    """The official ``_seg2bmap`` of both masks of ``merged`` at once (same layout, same bits).

    A pixel is boundary iff its 2x2 window (itself, right, below, below-right, clipped at the
    frame edge) is not constant: H(y, x) | H(y + 1, x) | V(y, x) with H, V the horizontal and
    vertical neighbour XORs, computed here on the flattened layout. Inside the frame the zero frame
    around the crop is real background; where the crop touches the frame edge, the comparisons with
    the frame's outside are removed (the last row keeps H, the last column V, as the official code).

    Returns:
        uint8 [L]: the map, flattened (the layout is its first Hl * Wl bytes), L the layout size
        rounded up to a multiple of 8 (the tail is zero).
    """
    layout_w = merged.shape[1]
    flat = merged.reshape(-1)
    size = flat.size
    scratch = np.empty(size, np.uint8)
    scratch[-1] = 0
    cv2.bitwise_xor(flat[:-1], flat[1:], dst=scratch[:-1])
    across = scratch.reshape(merged.shape)
    if box.x0 == 0:
        across[:, pad - 1] = 0
    if box.x1 == box.width:
        across[:, pad + box.x1 - box.x0 - 1] = 0
    out = np.empty(-(-size // 8) * 8, np.uint8)
    out[size - layout_w :] = 0
    cv2.bitwise_or(scratch[:-layout_w], scratch[layout_w:], dst=out[: size - layout_w])
    cv2.bitwise_xor(flat[:-layout_w], flat[layout_w:], dst=scratch[:-layout_w])
    if box.y1 == box.height:
        across[pad + box.y1 - box.y0 - 1] = 0
    cv2.bitwise_or(out[:size], scratch, dst=out[:size])
    if box.y0 == 0:
        out[(pad - 1) * layout_w : pad * layout_w] = 0
    return out


def boundary_pixels(bmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (int64 [N], ascending) and values (uint8 [N]) of the non-zero bytes of
    ``bmap`` (uint8 [8 k]): busy 8-byte words are found first, then the bytes inside them."""
    words = bmap.view(np.uint64)
    busy = (words != 0).nonzero()[0]
    octets = words[busy].view(np.uint8)
    inner = (octets != 0).nonzero()[0]
    return busy[inner >> 3] * 8 + (inner & 7), octets[inner]


def missed(
    layout: np.ndarray, pixels: np.ndarray, values: np.ndarray, footprint: Disk
) -> tuple[int, int]:
    """(prediction, GT) boundary pixels with no boundary pixel of the other map within the disk.

    Args:
        layout: uint8 [Hl, Wl], the merged boundary map (GT_BIT, PRED_BIT), padded by the reach
            (by one more column on the right).
        pixels, values: its non-zero pixels (flat indices) and their values.
    """
    width = layout.shape[1]
    integral = cv2.integral(layout[:, :-1]).reshape(-1)
    missing = values & FAR[footprint.centre_sums(integral, width, pixels)]
    pending = (missing != 0).nonzero()[0]
    left = missing[pending]
    if pending.size and len(footprint.pieces) > 1:
        far = FAR[footprint.other_sums(integral, width, pixels[pending])]
        left &= np.bitwise_and.reduce(far, axis=1)
    return int(np.count_nonzero(left >= PRED_BIT)), int(np.count_nonzero(left & GT_BIT))


def _far_table() -> np.ndarray:
    """uint8 [128 * 129]: for a box sum of the merged boundary map (n_gt + 128 n_pred, fewer than
    128 pixels in a piece), PRED_BIT if the box holds no GT pixel (a prediction pixel there is not
    matched by it) and GT_BIT if it holds no prediction pixel."""
    sums = np.arange(GT_FIELD * (PRED_BIT + GT_BIT) + 1)
    no_gt = (sums & GT_FIELD) == 0
    no_pred = sums < PRED_BIT
    return (no_gt * PRED_BIT + no_pred * GT_BIT).astype(np.uint8)


FAR = _far_table()
