"""Reading what the evaluations compare: prediction PNGs, indexed annotation PNGs, COCO RLE.

Every problem is an InputError naming the file: missing, unreadable, of the wrong kind or size.
Pillow and pycocotools are imported on first use: a DAVIS evaluation of plain masks needs neither.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from zlib_ng import zlib_ng

from rvos_core.errors import InputError
from rvos_core.masks import unfiltered_pixels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GRAY, PALETTE = 0, 3  # PNG colour types read by the fast path (8 bits, not interlaced)


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


def _png_chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """The IHDR body and the IDAT bodies of a PNG (chunk CRCs are not checked, as Pillow does not
    check IDAT's); struct.error or ValueError when the chunk structure is broken."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    header, idat, pos = b"", [], len(PNG_SIGNATURE)
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    return header, idat


def _plain_png_labels(data: bytes) -> np.ndarray | None:
    """Labels uint8 [H, W] (a read-only view) of an 8-bit gray or palette PNG, not interlaced, whose
    rows all use filter 0 (what palette PNG writers do), inflated by zlib-ng; None for any other
    PNG or any problem (Pillow then reads it, or explains what is wrong)."""
    try:
        header, idat = _png_chunks(data)
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
        if depth != 8 or colour not in (GRAY, PALETTE) or interlace or not idat:
            return None
        raw = zlib_ng.decompress(b"".join(idat))
    except (struct.error, ValueError, zlib_ng.error):
        return None
    return unfiltered_pixels(raw, height, width)


def png_pixels(path: Path) -> int:
    """H x W of the PNG at ``path`` from its header; 0 when it is no readable PNG."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return 0
    if not head.startswith(PNG_SIGNATURE) or len(head) < 24:
        return 0
    width, height = struct.unpack_from(">II", head, 16)
    return width * height


def _pillow_labels(path: Path, data: bytes, what: str) -> np.ndarray:
    """Labels uint8 [H, W] of a 'P', 'L' or '1' image as ``np.array(Image.open)``, by Pillow."""
    from PIL import Image, UnidentifiedImageError

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
    return labels


def read_index_png(
    path: Path, shape: tuple[int, int] | None = None, what: str = "PNG"
) -> np.ndarray:
    """Labels uint8 [H, W] of an indexed (palette) or 8-bit grayscale PNG, as ``np.array(Image.open)``
    gives them (possibly a read-only view).

    Palette PNGs give their indices, 'L' PNGs their values, bilevel PNGs 0 / 1. Colour or 16-bit
    images are refused: the official readers would misread them. Plain 8-bit PNGs (filter 0, as
    DAVIS and our writers store masks) are inflated directly, 10-20x faster than through Pillow.
    """
    data = _read_bytes(path, what)
    labels = _plain_png_labels(data)
    if labels is None:
        labels = _pillow_labels(path, data, what)
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
        from pycocotools import mask as coco_mask

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
    from pycocotools import mask as coco_mask

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
