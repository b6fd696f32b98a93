"""Reading what the evaluations compare: prediction PNGs, indexed annotation PNGs, COCO RLE.

Every problem is an InputError naming the file: missing, unreadable, of the wrong kind or size.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from rvos_core.errors import InputError


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, f"{what} is missing") from None
    except IsADirectoryError:
        raise InputError(path, f"{what} is a folder, not a file") from None


def check_shape(path: Path, shape: tuple[int, ...], expected: tuple[int, int] | None) -> None:
    """Refuse an image whose (H, W) differs from ``expected`` (when given)."""
    if expected is not None and tuple(shape) != tuple(expected):
        raise InputError(
            path, f"image is {shape[0]}x{shape[1]}, expected {expected[0]}x{expected[1]} (HxW)"
        )


def read_gray_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A prediction as the MeViS script reads it: cv2 grayscale decode, any non-zero = foreground.

    Returns bool [H, W]; ``shape`` (H, W) is enforced when given.
    """
    data = _read_bytes(path, "prediction PNG")
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise InputError(path, "corrupt or unreadable image (OpenCV could not decode it)")
    check_shape(path, gray.shape, shape)
    return gray != 0


def read_index_png(
    path: Path, shape: tuple[int, int] | None = None, what: str = "PNG"
) -> np.ndarray:
    """Labels uint8 [H, W] of an indexed (palette) or 8-bit grayscale PNG, as ``np.array(Image.open)``.

    Palette PNGs give their indices, 'L' PNGs their values, bilevel PNGs 0 / 1. Colour or 16-bit
    images are refused: the official readers would misread them.
    """
    data = _read_bytes(path, what)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            if mode not in ("P", "L", "1"):
                raise InputError(
                    path,
                    f"{what} must be indexed (palette) or 8-bit grayscale, found mode {mode!r}",
                )
            labels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(path, f"corrupt or unreadable {what}: {exc}") from None
    check_shape(path, labels.shape, shape)
    return labels


def decode_rle(rle: Any, source: Path, where: str) -> np.ndarray | None:
    """bool [H, W] C-contiguous of one COCO RLE ({"size": [H, W], "counts": str}); None for null.

    ``source`` and ``where`` name the file and the entry in errors. The structure is checked; the
    run lengths themselves are trusted (pycocotools decodes them as the official script does).
    """
    if rle is None:
        return None
    size = rle.get("size") if isinstance(rle, dict) else None
    counts = rle.get("counts") if isinstance(rle, dict) else None
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(s, int) and s > 0 for s in size)
        or not isinstance(counts, str | bytes | list)
    ):
        raise InputError(source, f"{where}: not a COCO RLE {{'size': [H, W], 'counts': ...}}")
    height, width = size
    if isinstance(counts, list):
        rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, str):
        rle = {"size": [height, width], "counts": counts.encode("ascii", "replace")}
    try:
        decoded = coco_mask.decode(rle)
    except (ValueError, TypeError) as exc:
        raise InputError(source, f"{where}: undecodable RLE: {exc}") from None
    if decoded.shape != (height, width):
        raise InputError(source, f"{where}: RLE decodes to {decoded.shape}, not {height}x{width}")
    return np.ascontiguousarray(decoded, dtype=np.bool_)
