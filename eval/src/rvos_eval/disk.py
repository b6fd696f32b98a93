"""The dilation disk of the boundary measure, as a union of rectangles, and the matching test.

The official F dilates each boundary map with ``skimage.morphology.disk(r)`` (``cv2.dilate``, default
anchor at the kernel centre, pixels outside the image contribute nothing) and counts the boundary
pixels of the other map that land in the dilation. A pixel p is therefore *matched* iff some
boundary pixel of the other map lies at an offset of the footprint from p. Instead of dilating, this
module answers that question for the boundary pixels only: every row of the footprint is an interval,
so the footprint is the union of a few rectangles (6 for r = 8, 9 for r = 12); an integral image of
the other map counts its pixels in a rectangle with four look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Rect = tuple[int, int, int, int]  # dy0, dy1, dx0, dx1: inclusive offsets from the anchor


def footprint(radius: float) -> np.ndarray:
    """bool [n, n]: skimage.morphology.disk(radius) (strict radius, no decomposition).

    Offsets run over ``arange(-radius, radius + 1)`` on both axes, so a non-integer radius gives
    half-integer offsets and an even ``n``; ``cv2.dilate`` anchors the kernel at ``n // 2``.
    """
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx**2 + yy**2) <= radius**2


def row_rectangles(kernel: np.ndarray) -> list[Rect]:
    """Rectangles (offsets from the cv2 anchor) whose union is exactly the set bits of ``kernel``.

    Requires every row of ``kernel`` to be one interval (true of a disk). For each row, its interval
    is grown over the neighbouring rows that contain it; duplicates are dropped. Largest first.
    """
    height, width = kernel.shape
    anchor_y, anchor_x = height // 2, width // 2
    rows: list[tuple[int, int] | None] = []
    for row in kernel:
        set_bits = np.flatnonzero(row)
        if set_bits.size and set_bits.size != set_bits[-1] - set_bits[0] + 1:
            raise ValueError("every footprint row must be a single interval")
        rows.append((int(set_bits[0]), int(set_bits[-1])) if set_bits.size else None)

    def contains(i: int, interval: tuple[int, int]) -> bool:
        row = rows[i] if 0 <= i < height else None
        return row is not None and row[0] <= interval[0] and row[1] >= interval[1]

    found: set[Rect] = set()
    for i, interval in enumerate(rows):
        if interval is None:
            continue
        top, bottom = i, i
        while contains(top - 1, interval):
            top -= 1
        while contains(bottom + 1, interval):
            bottom += 1
        found.add(
            (top - anchor_y, bottom - anchor_y, interval[0] - anchor_x, interval[1] - anchor_x)
        )
    return sorted(found, key=lambda r: (-(r[1] - r[0] + 1) * (r[3] - r[2] + 1), r))


@dataclass(frozen=True)
class Disk:
    """The footprint of one radius, prepared for matching.

    Attributes:
        radius: the radius as the official code passes it (a float).
        reach: largest |offset| of the footprint; boundary maps are padded by it.
        rectangles: the footprint as rectangles, largest first.
        outer: the footprint's bounding rectangle (no pixel in it means no match).
    """

    radius: float
    reach: int
    rectangles: tuple[Rect, ...]
    outer: Rect

    def matched(self, integral: np.ndarray, width: int, points: np.ndarray) -> int:
        """How many of ``points`` have a pixel of the integrated map within the footprint.

        Args:
            integral: int32 [(Hp + 1) * (Wp + 1)], flattened cv2.integral of a padded map.
            width: Wp + 1, the integral's row length.
            points: int64 [N], flat indices into the integral of the query pixels (every
                footprint offset of them must stay inside the integral: pad by ``reach``).

        The largest rectangle decides most points; of the others, those with nothing in the
        bounding rectangle are out of reach; the few left are tested against all the other
        rectangles at once.
        """
        plan = _plan(self, width)
        left = points + plan.lowest
        first = _rect_sums(integral, left, plan.first) > 0
        matched = int(np.count_nonzero(first))
        left = left[~first]
        if left.size:
            left = left[_rect_sums(integral, left, plan.outer) > 0]
        if left.size and plan.rest.size:
            corners = integral[left[:, None] + plan.rest[None, :]].reshape(left.size, -1, 4)
            sums = corners[..., 0] - corners[..., 1] - corners[..., 2] + corners[..., 3]
            matched += int(np.count_nonzero((sums > 0).any(axis=1)))
        return matched


def _rect_sums(
    integral: np.ndarray, left: np.ndarray, corners: tuple[int, int, int, int]
) -> np.ndarray:
    """Sums [N] of one rectangle at each of ``left`` (flat indices shifted by the plan's lowest)."""
    a, b, c, d = corners
    return integral[a:][left] - integral[b:][left] - integral[c:][left] + integral[d:][left]


@dataclass(frozen=True)
class _Plan:
    """Corner offsets of Disk.matched's tests for one integral row length, shifted to be >= 0.

    Attributes:
        lowest: the shift (added to every query index).
        first, outer: corners of the largest and of the bounding rectangle.
        rest: int64 [4 (K - 1)], corners of the other rectangles.
    """

    lowest: int
    first: tuple[int, int, int, int]
    outer: tuple[int, int, int, int]
    rest: np.ndarray


@lru_cache(maxsize=256)
def _plan(disk: Disk, width: int) -> _Plan:
    corners = [_corner_offsets(r, width) for r in (*disk.rectangles, disk.outer)]
    lowest = min(min(c) for c in corners)
    shifted = [tuple(o - lowest for o in c) for c in corners]
    rest = np.array(shifted[1:-1], dtype=np.int64).reshape(-1)
    return _Plan(lowest, shifted[0], shifted[-1], rest)  # type: ignore[arg-type]


def _corner_offsets(rect: Rect, width: int) -> tuple[int, int, int, int]:
    """Flat integral offsets (+bottom-right, -top-right, -bottom-left, +top-left) of ``rect``."""
    dy0, dy1, dx0, dx1 = rect
    return (
        (dy1 + 1) * width + dx1 + 1,
        dy0 * width + dx1 + 1,
        (dy1 + 1) * width + dx0,
        dy0 * width + dx0,
    )


@lru_cache(maxsize=64)
def disk(radius: float) -> Disk:
    """The prepared footprint of ``radius`` (cached: a benchmark uses one or two radii)."""
    kernel = footprint(radius)
    if not kernel.any():
        raise ValueError(f"the disk of radius {radius} is empty")
    rectangles = tuple(row_rectangles(kernel))
    rows, cols = np.nonzero(kernel)
    anchor_y, anchor_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    outer = (
        int(rows.min()) - anchor_y,
        int(rows.max()) - anchor_y,
        int(cols.min()) - anchor_x,
        int(cols.max()) - anchor_x,
    )
    reach = max(abs(v) for v in outer)
    return Disk(radius=radius, reach=reach, rectangles=rectangles, outer=outer)
