"""The dilation disk of the boundary measure, as rectangles for box sums of an integral image.

The official F dilates each boundary map with ``skimage.morphology.disk(r)`` (``cv2.dilate``, default
anchor at the kernel centre, pixels outside the image contribute nothing) and counts the boundary
pixels of the other map that land in the dilation. A pixel p is therefore *matched* iff some
boundary pixel of the other map lies at an offset of the footprint from p. Instead of dilating, the
caller asks that question for the boundary pixels only, with box sums over an integral image: the
footprint is covered by *pieces*, rectangles of fewer than 128 pixels (so that a box sum of the
combined map of metrics.py can be split into its two counts). The first piece is the largest one
around the anchor and decides most pixels; the others cover the rest of the disk (they may overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Rect = tuple[int, int, int, int]  # dy0, dy1, dx0, dx1: inclusive offsets from the anchor
PIECE_LIMIT = 127  # most pixels in one piece: below 128, the prediction's weight in metrics.py


def footprint(radius: float) -> np.ndarray:
    """bool [n, n]: skimage.morphology.disk(radius) (strict radius, no decomposition).

    Offsets run over ``arange(-radius, radius + 1)`` on both axes, so a non-integer radius gives
    half-integer offsets and an even ``n``; ``cv2.dilate`` anchors the kernel at ``n // 2``.
    """
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx**2 + yy**2) <= radius**2


def row_intervals(kernel: np.ndarray) -> list[tuple[int, int] | None]:
    """Per kernel row, its set columns as one interval of offsets from the anchor (None if empty).

    Raises ValueError unless every row is a single interval (true of a disk).
    """
    anchor_x = kernel.shape[1] // 2
    rows: list[tuple[int, int] | None] = []
    for row in kernel:
        set_bits = np.flatnonzero(row)
        if set_bits.size and set_bits.size != set_bits[-1] - set_bits[0] + 1:
            raise ValueError("every footprint row must be a single interval")
        rows.append(
            (int(set_bits[0]) - anchor_x, int(set_bits[-1]) - anchor_x) if set_bits.size else None
        )
    return rows


def row_rectangles(kernel: np.ndarray) -> list[Rect]:
    """Rectangles (offsets from the cv2 anchor) whose union is exactly the set bits of ``kernel``.

    For each row, its interval is grown over the neighbouring rows that contain it; duplicates are
    dropped. Largest first.
    """
    rows = row_intervals(kernel)
    height, anchor_y = kernel.shape[0], kernel.shape[0] // 2

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
        found.add((top - anchor_y, bottom - anchor_y, *interval))
    return sorted(found, key=lambda r: (-area(r), r))


def area(rect: Rect) -> int:
    """Pixels of ``rect``."""
    return (rect[1] - rect[0] + 1) * (rect[3] - rect[2] + 1)


def centre_piece(kernel: np.ndarray, limit: int = PIECE_LIMIT) -> Rect:
    """The rectangle of at most ``limit`` pixels inside ``kernel`` that reaches farthest from the
    anchor in its nearest direction (the largest among equals): it decides the pixels closest to a
    boundary of the other map, which are most of them."""
    rows = row_intervals(kernel)
    anchor_y = kernel.shape[0] // 2
    best: tuple[int, int, Rect] | None = None
    for top in range(anchor_y, -1, -1):
        lo, hi = -kernel.shape[1], kernel.shape[1]
        for bottom in range(top, kernel.shape[0]):
            row = rows[bottom]
            if row is None:
                break
            lo, hi = max(lo, row[0]), min(hi, row[1])
            width = min(hi - lo + 1, limit // (bottom - top + 1))
            if bottom < anchor_y:
                continue
            if width < 1 or not lo <= 0 <= hi:
                break
            left = min(max(lo, -(width // 2)), hi - width + 1)
            rect = (top - anchor_y, bottom - anchor_y, left, left + width - 1)
            key = (min(-rect[0], rect[1], -rect[2], rect[3]), area(rect), rect)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:
        raise ValueError("the footprint does not hold its anchor")
    return best[2]


def slabs(rect: Rect, limit: int = PIECE_LIMIT) -> list[Rect]:
    """``rect`` cut into bands of rows (and, if one row is too wide, of columns) of <= limit pixels."""
    dy0, dy1, dx0, dx1 = rect
    width = min(dx1 - dx0 + 1, limit)
    rows = max(1, limit // width)
    return [
        (y, min(y + rows - 1, dy1), x, min(x + width - 1, dx1))
        for y in range(dy0, dy1 + 1, rows)
        for x in range(dx0, dx1 + 1, width)
    ]


def without_redundant(kernel: np.ndarray, centre: Rect, candidates: list[Rect]) -> list[Rect]:
    """``candidates`` less those whose pixels the centre piece and the others kept already cover
    (smallest dropped first), largest first."""
    anchor_y, anchor_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    cover = np.zeros(kernel.shape, np.int32)

    def window(rect: Rect) -> tuple[slice, slice]:
        dy0, dy1, dx0, dx1 = rect
        return slice(anchor_y + dy0, anchor_y + dy1 + 1), slice(anchor_x + dx0, anchor_x + dx1 + 1)

    unique = sorted(set(candidates), key=lambda r: (area(r), r))
    for rect in (centre, *unique):
        cover[window(rect)] += 1
    kept = []
    for rect in unique:
        if cover[window(rect)].min() > 1:
            cover[window(rect)] -= 1
        else:
            kept.append(rect)
    return sorted(kept, key=lambda r: (-area(r), r))


@dataclass(frozen=True)
class Disk:
    """The footprint of one radius, prepared for matching.

    Attributes:
        radius: the radius as the official code passes it (a float).
        reach: largest |offset| of the footprint; maps are padded by it.
        pieces: the footprint covered by rectangles of <= PIECE_LIMIT pixels, the centre piece first.
    """

    radius: float
    reach: int
    pieces: tuple[Rect, ...]

    def centre_sums(self, integral: np.ndarray, width: int, points: np.ndarray) -> np.ndarray:
        """int32 [N]: sums of the integrated map over the centre piece placed at each point.

        Args:
            integral: int32 [R * width], a flattened cv2.integral (of a map padded by ``reach``).
            width: the integral's row length.
            points: int64 [N], the query pixels as flat indices y * width + x, (y, x) their row
                and column in the map (every footprint offset of them must stay in the map).
        """
        lowest, corners = _centre_corners(self.radius, width)
        at = points + lowest
        a, b, c, d = corners
        return (integral[a:][at] + integral[d:][at]) - (integral[b:][at] + integral[c:][at])

    def other_sums(self, integral: np.ndarray, width: int, points: np.ndarray) -> np.ndarray:
        """int32 [N, K]: the same over each of the other K pieces (for the few undecided points)."""
        at = integral[points[:, None, None] + _corners(self.radius, width)[None, 1:]]
        return (at[..., 0] + at[..., 3]) - (at[..., 1] + at[..., 2])


@lru_cache(maxsize=256)
def _corners(radius: float, width: int) -> np.ndarray:
    """int64 [K, 4]: flat integral offsets (+bottom-right, -top-right, -bottom-left, +top-left) of
    the pieces of ``disk(radius)`` for an integral of row length ``width``."""
    return np.array(
        [
            (
                (dy1 + 1) * width + dx1 + 1,
                dy0 * width + dx1 + 1,
                (dy1 + 1) * width + dx0,
                dy0 * width + dx0,
            )
            for dy0, dy1, dx0, dx1 in disk(radius).pieces
        ],
        dtype=np.int64,
    )


@lru_cache(maxsize=256)
def _centre_corners(radius: float, width: int) -> tuple[int, tuple[int, ...]]:
    """The centre piece's four offsets of ``_corners``, shifted to be >= 0, and the shift (points
    move by it instead, so that each corner is a plain gather from a view of the integral)."""
    corners = [int(v) for v in _corners(radius, width)[0]]
    lowest = min(corners)
    return lowest, tuple(v - lowest for v in corners)


@lru_cache(maxsize=64)
def disk(radius: float) -> Disk:
    """The prepared footprint of ``radius`` (cached: a benchmark uses one or two radii)."""
    kernel = footprint(radius)
    if not kernel.any():
        raise ValueError(f"the disk of radius {radius} is empty")
    centre = centre_piece(kernel)
    candidates = [piece for rect in row_rectangles(kernel) for piece in slabs(rect)]
    rest = without_redundant(kernel, centre, candidates)
    rows, cols = np.nonzero(kernel)
    reach = max(
        kernel.shape[0] // 2 - int(rows.min()),
        int(rows.max()) - kernel.shape[0] // 2,
        kernel.shape[1] // 2 - int(cols.min()),
        int(cols.max()) - kernel.shape[1] // 2,
    )
    return Disk(radius=radius, reach=reach, pieces=(centre, *rest))
