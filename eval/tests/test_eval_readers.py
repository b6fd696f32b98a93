"""Indexed PNG reading (the zlib-ng fast path against Pillow) and the default worker count."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_core.errors import InputError
from rvos_eval import readers, workers
from rvos_eval.readers import png_pixels, read_index_png

SHAPE = (37, 53)


def random_labels(seed: int) -> np.ndarray:
    """uint8 [37, 53] labels 0..5 and 255 (void) in blocks, as masks look."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(np.array([0, 0, 1, 2, 5, 255], np.uint8), (5, 7))
    return np.kron(coarse, np.ones((8, 8), np.uint8))[: SHAPE[0], : SHAPE[1]].copy()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def gray_png(labels: np.ndarray, sub_filter: bool) -> bytes:
    """An 8-bit grayscale PNG of uint8 [H, W] whose rows use filter 1 (Sub) or 0 (None)."""
    height, width = labels.shape
    diffs = np.diff(labels, axis=1, prepend=np.uint8(0)).astype(np.uint8)
    rows = np.hstack([np.full((height, 1), sub_filter, np.uint8), diffs if sub_filter else labels])
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes()))
    return readers.PNG_SIGNATURE + body + chunk(b"IEND", b"")


def test_plain_pngs_read_as_pillow_does(tmp_path: Path) -> None:
    """Palette PNGs as Pillow writes them (filter 0) and unfiltered grayscale PNGs."""
    palette, gray = tmp_path / "p.png", tmp_path / "l.png"
    image = Image.fromarray(random_labels(1), mode="P")
    image.putpalette([v for i in range(256) for v in (i, 3 * i % 256, 0)])
    image.save(palette)
    gray.write_bytes(gray_png(random_labels(4), sub_filter=False))
    for path in (palette, gray):
        assert readers._plain_png_labels(path.read_bytes()) is not None  # the fast path read it
        np.testing.assert_array_equal(read_index_png(path, SHAPE), np.asarray(Image.open(path)))
        assert png_pixels(path) == SHAPE[0] * SHAPE[1]


def test_other_pngs_go_through_pillow(tmp_path: Path) -> None:
    labels = random_labels(2)
    filtered, bilevel = tmp_path / "sub.png", tmp_path / "bits.png"
    filtered.write_bytes(gray_png(labels, sub_filter=True))
    Image.fromarray(labels > 0).save(bilevel)
    assert readers._plain_png_labels(filtered.read_bytes()) is None
    np.testing.assert_array_equal(read_index_png(filtered), labels)
    assert readers._plain_png_labels(bilevel.read_bytes()) is None
    np.testing.assert_array_equal(read_index_png(bilevel), (labels > 0).astype(np.uint8))


def test_broken_pngs_are_input_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    data = gray_png(random_labels(3), sub_filter=True)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or unreadable mask"):
        read_index_png(path, what="mask")
    path.write_bytes(b"not a png")
    assert png_pixels(path) == 0 and png_pixels(tmp_path / "missing.png") == 0
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"a\.png: image is 37x53, expected 2x2"):
        read_index_png(path, (2, 2))


def test_pool_only_where_it_saves_more_than_it_costs() -> None:
    per_worker = workers.WORKER_START_S / workers.SECONDS_PER_PIXEL
    assert workers.pool_size(0, cpus=8) == 1
    davis_2017_sized = 2 * 6 * 30 * 720 * 1280  # mask pixels of 6 sequences x 30 frames at 720p
    assert workers.pool_size(davis_2017_sized, cpus=8) == 1
    assert workers.pool_size(int(6 * per_worker) - 1, cpus=2) == 1  # 2 workers: work >= 6 starts
    assert workers.pool_size(int(6 * per_worker) + 1, cpus=2) == 2
    assert workers.pool_size(10**15, cpus=3) == 3
