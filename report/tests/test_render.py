from __future__ import annotations

import cv2
import numpy as np

from rvos_report import render


def _direct(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def test_shrink_in_whole_blocks_is_the_area_average() -> None:
    image = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    assert np.array_equal(render.shrink(image, (30, 50)), _direct(image, (30, 50)))


def test_shrink_to_a_tile_is_close_to_one_area_average() -> None:
    """720p to a 240-pixel tile goes through 144 x 256 first: a smooth frame moves by a few grey
    levels, a mask (a disk) in a few of its boundary pixels."""
    y, x = np.mgrid[:720, :1280]
    frame = np.stack([(x // 5) % 256, (y // 3) % 256, (x + y) // 8 % 256], axis=-1).astype(np.uint8)
    size = render.tile_size((720, 1280), 240)
    shrunk, direct = render.shrink(frame, size), _direct(frame, size)
    assert shrunk.shape == direct.shape == (*size, 3)
    assert np.abs(shrunk.astype(int) - direct).mean() < 0.5
    disk = (y - 300) ** 2 + (x - 700) ** 2 < 180**2
    tile = render.scale_mask(disk, size)
    exact = _direct(disk.view(np.uint8) * np.uint8(255), size) >= 128
    assert tile.dtype == bool and (tile != exact).sum() <= 0.1 * 2 * np.pi * 180 / 5.3


def test_shrink_keeps_sizes_it_cannot_divide() -> None:
    image = np.random.default_rng(1).integers(0, 256, (97, 131), dtype=np.uint8)
    assert np.array_equal(render.shrink(image, (20, 30)), _direct(image, (20, 30)))
