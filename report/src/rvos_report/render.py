"""Pictures of masks: a frame with one run's mask on it, the vote view, tiles side by side.

Images are uint8 RGB arrays [H, W, 3]; masks are bool [H, W] at the frame's size and are scaled
with the frame to the tile's width.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rvos_core.atomic import write_bytes

RGB = tuple[int, int, int]
# One colour per node, in the order the nodes are given (the ground truth is white).
PALETTE: tuple[RGB, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
)
TRUTH: RGB = (255, 255, 255)
KEY_FRAME: RGB = (255, 215, 0)
VOTED_IN: RGB = (0, 220, 90)
VOTED_OUT: RGB = (255, 40, 40)
GAP = 4  # pixels between tiles


def colour(index: int) -> RGB:
    """The colour of the ``index``-th node."""
    return PALETTE[index % len(PALETTE)]


def hex_colour(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def tile_size(shape: tuple[int, int], width: int) -> tuple[int, int]:
    """(H, W) of a tile ``width`` pixels wide (even, as video encoders want) of a frame of ``shape``."""
    height = max(2, round(shape[0] * width / shape[1]))
    return height + height % 2, width + width % 2


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W(, C)] -> uint8 [*size(, C)], area-averaged. OpenCV averages whole k x k blocks
    several times faster than a fractional grid, so a frame whose sides k divides goes down by
    the largest such k first (720p to a 240-pixel tile: 5, then 256 -> 240 columns): 3x faster for
    a mask, 2x for a frame. Two averages blur a little more than one: a frame's tile moves by a
    few grey levels at sharp edges, a mask's tile in a few of its boundary pixels (7 of a 213-pixel
    boundary in the test)."""
    k = min(image.shape[0] // size[0], image.shape[1] // size[1])
    if k >= 2 and image.shape[0] % k == 0 and image.shape[1] % k == 0:
        blocks = (image.shape[1] // k, image.shape[0] // k)
        image = cv2.resize(image, blocks, interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def scale_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [*size, 3]."""
    return shrink(frame, size)


def scale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W] -> bool [*size] (area-averaged, then more than half covered)."""
    return shrink(mask.view(np.uint8) * np.uint8(255), size) >= 128


def overlay(frame: np.ndarray, mask: np.ndarray, rgb: RGB) -> np.ndarray:
    """The frame (scaled, uint8 [h, w, 3]) with ``mask`` (bool [h, w]) tinted in ``rgb`` and outlined."""
    out = frame.copy()
    tint = np.array(rgb, np.float32)
    out[mask] = (0.5 * out[mask] + 0.5 * tint).astype(np.uint8)
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, rgb, 1)
    return out


def vote_view(frame: np.ndarray, votes: np.ndarray, runs: int, decision: np.ndarray) -> np.ndarray:
    """Where the runs of a vote disagree and which way the vote went.

    Args:
        frame: uint8 [h, w, 3], the scaled frame.
        votes: uint8 [h, w], how many of the ``runs`` input masks hold each pixel.
        decision: bool [h, w], the vote's mask.

    Returns:
        uint8 [h, w, 3]: the frame in grey; pixels every run holds in white, disputed pixels
        (held by some runs only) green where the vote kept them and red where it dropped them,
        brighter the more runs held them.
    """
    grey = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out = (grey * 0.4).astype(np.uint8)
    disputed = (votes > 0) & (votes < runs)
    strength = (0.35 + 0.65 * votes.astype(np.float32) / runs)[..., None]
    for where, rgb in ((disputed & decision, VOTED_IN), (disputed & ~decision, VOTED_OUT)):
        out[where] = (strength[where] * np.array(rgb, np.float32)).astype(np.uint8)
    out[votes == runs] = (220, 220, 220)
    return out


def mark_key_frame(tile: np.ndarray) -> np.ndarray:
    """A 3-pixel key-frame border around ``tile`` (uint8 [h, w, 3]), in place; returns it."""
    cv2.rectangle(tile, (1, 1), (tile.shape[1] - 2, tile.shape[0] - 2), KEY_FRAME, 3)
    return tile


def side_by_side(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles of one height, left to right with a dark gap: uint8 [h, n w + (n-1) GAP, 3] (even
    widths stay even: GAP is even)."""
    gap = np.full((tiles[0].shape[0], GAP, 3), 24, np.uint8)
    parts = [part for t in tiles for part in (gap, t)][1:]
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def write_jpeg(path: Path, image: np.ndarray, quality: int = 82) -> None:
    """uint8 RGB [h, w, 3] -> JPEG file, atomically."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"{path}: JPEG encoding failed")
    write_bytes(path, data.tobytes())
