"""Binary mask PNGs (mode 'L', 0 / 255) and uint8 probability maps.

Our mask PNGs are written directly: rows with PNG filter 0 (none), deflated by zlib-ng at level 1
(5x faster than OpenCV's libpng at zlib level 1, deterministic bytes). Reading inflates such files
with zlib-ng (6x faster than libpng); any other PNG (other row filters, interlaced) is decoded by
OpenCV. The PNG header is checked directly so that a palette or RGB file is refused instead of
silently converted, and the chunk structure and checksums are checked before decoding, so that a
truncated or damaged file is one error of ours (libpng would print its own line first). OpenCV's
log is silenced for the same reason.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from zlib_ng import zlib_ng

from rvos_core.errors import InputError

try:
    from rvos_core import _kernels
except ImportError:  # installed without a C compiler: NumPy does the kernels' work
    _kernels = None

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
_CHUNK = struct.Struct(">I4s")
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def png_header(data: bytes, path: str | Path) -> tuple[int, int, int, int]:
    """Return (height, width, bit_depth, color_type) from a PNG's IHDR chunk."""
    if len(data) < 33 or data[:8] != _SIGNATURE or data[12:16] != b"IHDR":
        raise InputError(path, "not a PNG file (bad signature or header)")
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    return height, width, depth, color


def check_png_chunks(data: bytes, path: str | Path) -> list[memoryview]:
    """Every chunk up to IEND lies within ``data`` and matches its CRC (a truncated or damaged
    file is an InputError naming it); returns the IDAT chunks' bodies."""
    view = memoryview(data)
    pos, idat = len(_SIGNATURE), []
    while pos + _CHUNK.size <= len(data):
        length, kind = _CHUNK.unpack_from(data, pos)
        end = pos + _CHUNK.size + length + 4
        if end > len(data):
            break
        if zlib_ng.crc32(view[pos + 4 : end - 4]) != int.from_bytes(view[end - 4 : end]):
            raise InputError(path, "damaged PNG (a chunk fails its checksum)")
        if kind == b"IEND":
            return idat
        if kind == b"IDAT":
            idat.append(view[pos + _CHUNK.size : end - 4])
        pos = end
    raise InputError(path, "truncated PNG (no IEND chunk)")


def unfiltered_pixels(raw: bytes, height: int, width: int) -> np.ndarray | None:
    """uint8 [H, W] (a read-only view) of the inflated rows ``raw`` of an 8-bit one-channel PNG,
    not interlaced, when every row uses filter 0; None otherwise (other filters, wrong length)."""
    if len(raw) != height * (width + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, width + 1)
    return None if rows[:, 0].any() else rows[:, 1:]


def _inflated_pixels(idat: list[memoryview], height: int, width: int) -> np.ndarray | None:
    """uint8 [H, W] of a filter-0 PNG's IDAT bodies, by zlib-ng; None for any other PNG."""
    try:
        raw = zlib_ng.decompress(b"".join(idat))
    except zlib_ng.error:
        return None
    return unfiltered_pixels(raw, height, width)


def png_pixels(data: bytes, path: str | Path) -> np.ndarray:
    """uint8 [H, W] of an 8-bit one-channel (grayscale or palette-index) PNG, chunks and checksums
    checked: rows that all use filter 0 (ours, Pillow's palette PNGs) inflated by zlib-ng, any other
    PNG decoded by OpenCV."""
    height, width, _, _ = png_header(data, path)
    idat = check_png_chunks(data, path)
    interlaced = data[28] != 0
    pixels = None if interlaced else _inflated_pixels(idat, height, width)
    if pixels is None:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.shape != (height, width):
        raise InputError(path, "corrupt PNG (could not be decoded)")
    return pixels


def decode_mask_png(
    data: bytes, path: str | Path, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode a run-folder mask PNG to bool [H, W] (True where 255).

    Refuses anything but an 8-bit single-channel PNG holding only 0 and 255, and (when ``shape`` is
    given) a size other than ``shape`` = (H, W).
    """
    height, width, depth, color = png_header(data, path)
    if color != 0 or depth != 8:
        kind = _COLOR_TYPES.get(color, f"color type {color}")
        raise InputError(path, f"mask PNG must be 8-bit mode 'L' (0/255), found {depth}-bit {kind}")
    if shape is not None and (height, width) != tuple(shape):
        raise InputError(path, f"mask is {height}x{width}, expected {shape[0]}x{shape[1]}")
    mask, only_0_255 = _mask_of_pixels(png_pixels(data, path))
    if not only_0_255:
        raise InputError(path, "mask PNG holds values other than 0 and 255")
    return mask


def _mask_of_pixels(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """bool [H, W] = pixels >= 128 of uint8 [H, W], and whether every pixel is 0 or 255: one pass
    of the compiled kernel, or three of NumPy / OpenCV where it was not built."""
    if _kernels is None:
        # every value is 0 or 255 <=> the sum is 255 x the number of non-zero pixels (values <= 255)
        only_0_255 = cv2.sumElems(pixels)[0] == 255.0 * cv2.countNonZero(pixels)
        return np.greater(pixels, 127), only_0_255
    mask = np.empty(pixels.shape, bool)
    return mask, _kernels.mask_of_pixels(pixels, mask)


def read_mask_png(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask PNG as bool [H, W]; a missing file is an InputError naming it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError(path, "mask PNG is missing") from None
    return decode_mask_png(data, path, shape)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, kind, body, CRC of kind and body."""
    crc = zlib_ng.crc32(body, zlib_ng.crc32(kind))
    return _CHUNK.pack(len(body), kind) + body + crc.to_bytes(4)


def mask_png_of_rows(rows: np.ndarray) -> bytes:
    """The mask PNG of rows uint8 [H, W + 1] (filter byte 0, then the pixels 0 / 255, as
    ``quantize_frame`` writes them): one IDAT chunk deflated by zlib-ng at level 1."""
    height, width = rows.shape[0], rows.shape[1] - 1
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib_ng.compress(rows, 1)
    return _SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _IEND


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Encode bool [H, W] as an 8-bit mode-'L' PNG with values 0 / 255 (deterministic bytes):
    rows with filter 0, one IDAT chunk deflated by zlib-ng at level 1."""
    height, width = mask.shape
    rows = np.zeros((height, width + 1), np.uint8)
    np.multiply(np.asarray(mask, dtype=bool), np.uint8(255), out=rows[:, 1:], casting="unsafe")
    return mask_png_of_rows(rows)


def sigmoid_f32(values: np.ndarray) -> np.ndarray:
    """float32 sigmoid [..] of float32 values, without torch: computed in float64, then rounded.

    Upstream thresholds torch's float32 ``tensor.sigmoid()``, whose last bit depends on the CPU's
    vector exp; this one is the correctly rounded value (within 2 float32 steps of torch's for
    |x| < 80, measured). ``> 0.5`` decides like torch except for logits in (8.9e-8, 1.2e-7):
    0 is background in both, and every other logit is decided the same way.
    """
    x = np.asarray(values, dtype=np.float32).astype(np.float64)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _nearest_step(p: np.ndarray) -> np.ndarray:
    """uint8 round(255 p) of float32 probabilities [..], moved by at most one step so that
    q >= 128 <=> p > 0.5 (``quantize_probs`` before its support rule)."""
    q = np.rint(p * np.float32(255.0)).astype(np.uint8)
    return np.where(p > 0.5, np.maximum(q, 128), np.minimum(q, 127)).astype(np.uint8)


def quantize_probs(probs: np.ndarray) -> np.ndarray:
    """Store probabilities [..] float32 in [0, 1] as uint8 that keep both decision rules exact.

    q = round(255 p), then moved by at most one step so that
      q >= 128  <=>  p > 0.5                       (the 0.5 threshold of every model), and
      q >= 1    <=>  float32 sigmoid(p) > 0.5       (upstream's unpaired rule applied to a probability).
    """
    p = np.asarray(probs, dtype=np.float32)
    if not np.all(np.isfinite(p)) or (p.size and (p.min() < 0.0 or p.max() > 1.0)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    support = sigmoid_f32(p) > 0.5
    return np.where(support, np.maximum(_nearest_step(p), 1), 0).astype(np.uint8)


def stored_probs(values: np.ndarray, logits: bool) -> np.ndarray:
    """The stored probabilities uint8 [..] of float32 values [..]: ``quantize_probs`` of the values
    (``logits=False``) or of their ``sigmoid_f32`` (``logits=True``). The reference definition."""
    values = np.asarray(values, dtype=np.float32)
    return quantize_probs(sigmoid_f32(values) if logits else values)


@dataclass(frozen=True, eq=False)
class QuantizationSteps:
    """Where ``stored_probs`` (q) steps, as float32 inputs of one domain.

    q is a non-decreasing step function of the input (a composition of non-decreasing roundings:
    ``sigmoid_f32`` is the correctly rounded sigmoid, then x 255, rounding and the two one-step
    moves of ``quantize_probs``), so it is the number of ``levels`` at or below the input, where
    ``levels[k]`` float32 [255] is the smallest input with q >= k + 1 (found by bisection over the
    reference itself). Named levels: q = 0 below ``support``, 1 from ``support`` up to ``band``,
    255 from ``top`` on, and q >= 128 (the mask) exactly from ``half`` on; only inputs in
    [band, top) (an object's boundary: typically ~1 % of a frame) take other values.
    """

    logits: bool
    levels: np.ndarray

    @classmethod
    def of(cls, logits: bool) -> QuantizationSteps:
        """The steps of the logit (``logits=True``) or the probability domain."""
        return _steps(logits)

    @property
    def support(self) -> float:
        return float(self.levels[0])

    @property
    def band(self) -> float:
        return float(self.levels[1])

    @property
    def half(self) -> float:
        return float(self.levels[127])

    @property
    def top(self) -> float:
        return float(self.levels[254])


_SIGN = 1 << 31


def _order_keys(values: np.ndarray) -> np.ndarray:
    """int64 [..] keys that order float32 values [..] as numbers (-0.0 and 0.0 share 0)."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.int64)
    return np.where(bits & _SIGN, -(bits & (_SIGN - 1)), bits)


def _from_keys(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys >= 0, keys, -keys | _SIGN).astype(np.uint32)
    return bits.view(np.float32)


@functools.cache
def _steps(logits: bool) -> QuantizationSteps:
    """All 255 levels at once: a bisection over the float32 order, each level its own interval."""
    # q is 0 at the low end and 255 at the high end of either range (no overflow in sigmoid_f32)
    ends = (-100.0, 100.0) if logits else (0.0, 1.0)
    wanted = np.arange(1, 256)
    lo, hi = (np.full(wanted.shape, k) for k in _order_keys(np.array(ends)))
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        reached = stored_probs(_from_keys(mid), logits) >= wanted
        lo, hi = np.where(reached, lo, mid + 1), np.where(reached, mid, hi)
    levels = _from_keys(lo)
    levels.flags.writeable = False
    return QuantizationSteps(logits, levels)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def quantize_frame(
    values: np.ndarray,
    steps: QuantizationSteps,
    out: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``stored_probs`` uint8 [H, W] of float32 values [H, W] of the steps' domain, exactly, into
    ``out`` (C-contiguous; a new array when None), and, when ``rows`` uint8 [H, W + 1] is given,
    the rows of the mask PNG of q >= 128 into it (``mask_png_of_rows``). OutOfDomain when a value
    is NaN or infinite, or, for probabilities, outside [0, 1].

    One pass of the compiled kernel (``rvos_core._kernels``): per block of 128 values, the range
    (it is the check as well); a block on one level (0, 1 or 255: most of a frame) is filled with
    it, any other block compared value by value, and the values in the band looked up in
    ``steps.levels``. Where the package was installed without a C compiler, NumPy does the same
    over 16 x 128 tiles in a few passes (``_quantize_tiles``: ~3x the CPU per frame)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    height, width = values.shape
    q = np.empty(values.shape, np.uint8) if out is None else out
    if q.shape != values.shape or (rows is not None and rows.shape != (height, width + 1)):
        raise ValueError(f"quantize_frame: out must be [H, W], rows [H, W + 1] for {values.shape}")
    if _kernels is None:
        _quantize_without_kernel(values, steps, q)
        if rows is not None:
            rows[:, 0] = 0
            np.negative(np.right_shift(q, 7), out=rows[:, 1:])
        return q
    png = np.empty((height, width + 1), np.uint8) if rows is None else rows
    low, high = (-_FLOAT32_MAX, _FLOAT32_MAX) if steps.logits else (-0.0, 1.0)
    if _kernels.quantize(values, height, width, steps.levels, low, high, q, png):
        raise OutOfDomain(_refusal(values))
    return q


def _refusal(values: np.ndarray) -> str:
    """Why values that are not all in their domain are refused."""
    return "probabilities outside [0, 1]" if np.isfinite(values).all() else "NaN or infinite values"


_TILE_ROWS, _TILE_COLS = 16, 128  # 720p: 45 x 10 tiles


def _quantize_without_kernel(values: np.ndarray, steps: QuantizationSteps, q: np.ndarray) -> None:
    """``quantize_frame``'s q in NumPy: the minimum and the maximum of each 16 x 128 tile (one
    reduction each over the frame; they are also the checks) show the tiles where q is one
    constant (0, 1 or 255), which are filled with it; the other tiles, and the rows and columns
    beyond the last whole tile, are quantised pixel by pixel (``_quantize_pixels``)."""
    height, width = values.shape
    rows, cols = height - height % _TILE_ROWS, width - width % _TILE_COLS
    lows, highs = [], []
    if rows and cols:
        low, high = _quantize_tiles(values[:rows, :cols], steps, q[:rows, :cols])
        lows.append(low.min())
        highs.append(high.max())
    for part in (np.s_[rows:, :], np.s_[:rows, cols:]):
        if values[part].size:
            q[part] = _quantize_pixels(values[part], steps)
            lows.append(values[part].min())
            highs.append(values[part].max())
    low, high = np.min(lows), np.max(highs)  # NaN propagates into both
    in_domain = low >= -_FLOAT32_MAX and high <= _FLOAT32_MAX
    if not (in_domain and (steps.logits or (low >= 0.0 and high <= 1.0))):
        raise OutOfDomain(_refusal(values))


def _quantize_tiles(
    values: np.ndarray, steps: QuantizationSteps, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """q of float32 values [R x 16, C x 128] into q (a view of the same shape); returns the tiles'
    minima and maxima [R, C]."""
    tiles = (values.shape[0] // _TILE_ROWS, values.shape[1] // _TILE_COLS)
    by_rows = values.reshape(tiles[0], _TILE_ROWS, -1)
    starts = np.arange(0, values.shape[1], _TILE_COLS)
    low = np.minimum.reduceat(by_rows.min(axis=1), starts, axis=1)
    high = np.maximum.reduceat(by_rows.max(axis=1), starts, axis=1)
    support, band, top = (np.float32(v) for v in (steps.support, steps.band, steps.top))
    fill = np.where(low >= top, np.uint8(255), (low >= support).view(np.uint8))
    constant = (high < support) | ((low >= support) & (high < band)) | (low >= top)
    by_tiles = np.reshape(q, (tiles[0], _TILE_ROWS, tiles[1], _TILE_COLS), copy=False)
    by_tiles[...] = fill[:, None, :, None]
    at = np.nonzero(~constant)
    if at[0].size:
        inputs = values.reshape(by_tiles.shape)[at[0], :, at[1], :]
        by_tiles[at[0], :, at[1], :] = _quantize_pixels(inputs, steps)
    return low, high


def _quantize_pixels(values: np.ndarray, steps: QuantizationSteps) -> np.ndarray:
    """q uint8 [..] of float32 values [..] (not checked), in a few flat passes: two comparisons
    give q in {0, 1, 255} and the band's positions; in the band (q from 2 to 254) q is the number
    of ``steps.levels`` at or below the value."""
    values = np.ascontiguousarray(values)
    top = np.greater_equal(values, np.float32(steps.top))
    q = np.greater_equal(values, np.float32(steps.support)).view(np.uint8)
    q += top.view(np.uint8) * np.uint8(254)
    inside = np.flatnonzero(np.greater_equal(values, np.float32(steps.band)) > top)
    q.reshape(-1)[inside] = np.searchsorted(steps.levels, values.reshape(-1)[inside], "right")
    return q


class OutOfDomain(ValueError):
    """Values that ``quantize_frame`` refuses: NaN or infinite, or probabilities outside [0, 1]."""
