"""Reading what the evaluations compare: prediction PNGs, indexed annotation PNGs, COCO RLE.

Every problem is an InputError naming the file: missing, unreadable, of the wrong kind or size.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
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


def _check_rle(rle: Any, shape: tuple[int, int], source: Path, where: str) -> dict[str, Any]:
    """A COCO RLE ({"size": [H, W], "counts": str | list}) of ``shape``, ready for pycocotools."""
    size = rle.get("size") if isinstance(rle, dict) else None
    counts = rle.get("counts") if isinstance(rle, dict) else None
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(s, int) for s in size)
        or not isinstance(counts, str | bytes | list)
    ):
        raise InputError(source, f"{where}: not a COCO RLE {{'size': [H, W], 'counts': ...}}")
    if tuple(size) != tuple(shape):
        raise InputError(
            source, f"{where}: RLE is {size[0]}x{size[1]}, the frames are {shape[0]}x{shape[1]}"
        )
    if isinstance(counts, list):
        return coco_mask.frPyObjects({"size": list(size), "counts": counts}, *shape)
    if isinstance(counts, str):
        return {"size": list(size), "counts": counts.encode("ascii", "replace")}
    return {"size": list(size), "counts": counts}


def decode_rles(
    rles: Sequence[Any], shape: tuple[int, int], source: Path, where: Sequence[str]
) -> list[np.ndarray]:
    """bool [H, W] (C-contiguous) of each of N COCO RLEs of size ``shape``.

    ``where[i]`` names entry i in errors. The structure and size are checked; the run lengths
    themselves are trusted (pycocotools decodes them as the official script does).
    """
    if not rles:
        return []
    ready = [_check_rle(r, shape, source, w) for r, w in zip(rles, where, strict=True)]
    with warnings.catch_warnings():
        # pycocotools 2.0.11 still calls np.array(..., copy=False) on its own type
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        try:
            decoded = coco_mask.decode(ready)  # uint8 0/1 [H, W, N], column-major
        except (ValueError, TypeError) as exc:
            raise InputError(source, f"{where[0]}..: undecodable RLE: {exc}") from None
    # plane.T is a row-major [W, H] view; cv2.transpose makes the row-major [H, W] copy fast
    return [cv2.transpose(decoded[:, :, i].T).view(np.bool_) for i in range(len(ready))]
