from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rvos_core import masks
from rvos_core.errors import InputError
from rvos_core.masks import (
    OutOfDomain,
    QuantizationSteps,
    decode_mask_png,
    encode_mask_png,
    mask_png_of_rows,
    quantize_frame,
    quantize_probs,
    read_mask_png,
    sigmoid_f32,
    stored_probs,
)


def test_png_round_trip_is_mode_l_0_255() -> None:
    mask = np.zeros((7, 9), bool)
    mask[2:5, 3] = True
    data = encode_mask_png(mask)
    image = Image.open(io.BytesIO(data))
    assert image.mode == "L" and image.size == (9, 7)
    assert set(np.unique(np.asarray(image))) == {0, 255}
    assert np.array_equal(decode_mask_png(data, Path("x.png")), mask)
    assert encode_mask_png(mask) == data


ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _interlaced(data: bytes, pixels: np.ndarray) -> bytes:
    """``data`` (one of our PNGs of ``pixels`` uint8 [H, W]) made Adam7-interlaced, filter 0."""
    rows = b"".join(
        b"\0" + row.tobytes() for x, y, dx, dy in ADAM7 for row in pixels[y::dy, x::dx] if row.size
    )
    header = data[16:28] + b"\x01"
    ihdr = (13).to_bytes(4) + b"IHDR" + header + zlib.crc32(b"IHDR" + header).to_bytes(4)
    return _idat_replaced(data[:8] + ihdr + data[33:], zlib.compress(rows))


def test_png_rows_use_filter_0_and_other_pngs_are_read() -> None:
    """Our PNGs are plain rows (filter 0), read by zlib-ng; a PNG with row filters (OpenCV's
    encoding with filter 'up') and an interlaced one are decoded by OpenCV to the same mask."""
    rng = np.random.default_rng(0)
    mask = rng.random((40, 60)) < 0.3
    data = encode_mask_png(mask)
    start = data.index(b"IDAT") + 4
    rows = zlib.decompress(data[start : start + int.from_bytes(data[start - 8 : start - 4])])
    assert rows[:: 60 + 1] == bytes(40)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), mask * np.uint8(255))
    pixels = mask * np.uint8(255)
    filtered = cv2.imencode(".png", pixels, (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP))
    for other in (filtered[1].tobytes(), _interlaced(data, pixels)):
        assert other != data
        assert np.array_equal(decode_mask_png(other, Path("o.png")), mask)


def _png(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a png at all, clearly not" * 2, "not a PNG"),
        (_png(np.zeros((4, 4), np.uint8), "P"), "palette"),
        (_png(np.zeros((4, 4, 3), np.uint8), "RGB"), "RGB"),
        (_png(np.full((4, 4), 7, np.uint8), "L"), "other than 0 and 255"),
    ],
)
def test_bad_pngs_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_mask_png(data, Path("bad.png"))


def _idat_replaced(data: bytes, payload: bytes) -> bytes:
    """``data`` with its (single) IDAT chunk holding ``payload``, with a correct CRC."""
    start = data.index(b"IDAT") - 4
    end = start + 12 + int.from_bytes(data[start : start + 4])
    crc = zlib.crc32(b"IDAT" + payload).to_bytes(4)
    chunk = len(payload).to_bytes(4) + b"IDAT" + payload + crc
    return data[:start] + chunk + data[end:]


def test_truncated_damaged_and_undecodable_pngs() -> None:
    """Truncated and damaged files are caught before OpenCV (whose log is silenced) and libpng
    (which would print its own line) see them."""
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    data = encode_mask_png(np.ones((6, 6), bool))
    flipped = bytearray(data)
    flipped[data.index(b"IDAT") + 6] ^= 0xFF
    cases = {
        data[: len(data) - 20]: "truncated PNG",
        data[: len(data) - 1]: "truncated PNG",
        bytes(flipped): "damaged PNG",
        _idat_replaced(data, b"not zlib data"): "corrupt PNG",
    }
    for bad, message in cases.items():
        with pytest.raises(InputError, match=message):
            decode_mask_png(bad, Path("t.png"))


def test_wrong_size_and_missing(tmp_path: Path) -> None:
    data = encode_mask_png(np.ones((6, 6), bool))
    with pytest.raises(InputError, match="6x6, expected 5x6"):
        decode_mask_png(data, Path("s.png"), (5, 6))
    with pytest.raises(InputError, match="missing"):
        read_mask_png(tmp_path / "absent.png")


def test_quantize_keeps_the_threshold_and_the_support() -> None:
    p = np.array([0.0, 1e-9, 1e-6, 1e-3, 0.4999, 0.5, 0.5000001, 0.502, 0.999, 1.0], np.float32)
    q = quantize_probs(p)
    assert np.array_equal(q >= 128, p > 0.5)
    assert np.array_equal(q >= 1, sigmoid_f32(p) > 0.5)
    # otherwise q is the nearest step: |q/255 - p| <= 1/255
    assert np.all(np.abs(q / 255.0 - p) <= 1 / 255 + 1e-7)
    assert q.tolist()[-1] == 255 and q.tolist()[0] == 0


@pytest.mark.parametrize("bad", [np.nan, -0.1, 1.5])
def test_quantize_refuses_invalid_probabilities(bad: float) -> None:
    with pytest.raises(ValueError):
        quantize_probs(np.array([0.2, bad], np.float32))


def _float32_neighbours(value: float, count: int) -> np.ndarray:
    """The ``count`` float32 values below ``value``, ``value`` and the ``count`` above, in order."""
    key = int(np.float32(value).view(np.int32))
    keys = np.arange(-count, count + 1, dtype=np.int64) * (-1 if key < 0 else 1) + key
    return np.sort(keys.astype(np.int32).view(np.float32))


@pytest.mark.parametrize("logits", [True, False])
def test_quantization_steps_are_where_q_steps(logits: bool) -> None:
    """Each step is the first float32 at its level, and q is a clean step around it (2^16 float32
    values each side: where a rounding glitch of the reference would show)."""
    steps = QuantizationSteps.of(logits)
    for name, level in (("support", 1), ("band", 2), ("half", 128), ("top", 255)):
        x = _float32_neighbours(getattr(steps, name), 1 << 16)
        if not logits:
            x = x[(x >= 0) & (x <= 1)]
        q = stored_probs(x, logits)
        at = np.searchsorted(x, np.float32(getattr(steps, name)))
        assert np.all(q[:at] < level) and np.all(q[at:] >= level), name
        assert np.all(np.diff(q.astype(np.int16)) >= 0), name


@pytest.fixture(params=["kernel", "numpy"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """quantize_frame through the compiled kernel, and through NumPy (a package built without a C
    compiler); CI always builds the kernel."""
    if request.param == "numpy":
        monkeypatch.setattr(masks, "_kernels", None)
    else:
        _require_kernel()
    return request.param


def _require_kernel() -> None:
    if masks._kernels is None:
        if os.environ.get("CI"):
            pytest.fail("rvos_core._kernels was not built (a C compiler and the Python headers)")
        pytest.skip("rvos_core._kernels was not built: no C compiler when core was installed")


@pytest.mark.parametrize("logits", [True, False])
def test_quantize_frame_is_the_reference(logits: bool, implementation: str) -> None:
    steps = QuantizationSteps.of(logits)
    rng = np.random.default_rng(3)
    if logits:
        spread = rng.normal(0.0, 12.0, 60_000)
        ends = [-3e38, -1e4, -88.8, -16.0, 0.0, -0.0, 1e-7, 6.0, 1e4, 3e38]
    else:
        spread = np.concatenate([rng.random(40_000), rng.random(20_000) * 1e-5])
        ends = [0.0, 1e-45, 1e-7, 0.5, 0.9980392, 1.0]
    near = [_float32_neighbours(getattr(steps, n), 500) for n in ("support", "band", "half", "top")]
    values = np.concatenate([spread, ends, *near]).astype(np.float32)
    if not logits:
        values = values[(values >= 0) & (values <= 1)]
    frame = values[: values.size // 8 * 8].reshape(8, -1)
    with np.errstate(over="ignore"):  # the reference's exp of -(-3e38) in float64: inf, p = 0
        expected = stored_probs(frame, logits)
    rows = np.full((8, frame.shape[1] + 1), 77, np.uint8)
    assert np.array_equal(quantize_frame(frame, steps, rows=rows), expected)
    assert mask_png_of_rows(rows) == encode_mask_png(expected >= 128)
    assert np.array_equal(quantize_frame(frame[:, ::2], steps), expected[:, ::2])
    assert np.array_equal(frame >= np.float32(steps.half), expected >= 128)


@pytest.mark.parametrize("logits", [True, False])
def test_every_level_starts_where_the_reference_steps(logits: bool, implementation: str) -> None:
    """Around each of the 255 levels (8 float32 values each side), in blocks of every kind."""
    steps = QuantizationSteps.of(logits)
    assert np.all(np.diff(steps.levels) >= 0)
    values = np.unique(np.concatenate([_float32_neighbours(v, 8) for v in steps.levels]))
    if not logits:
        values = values[(values >= 0) & (values <= 1)]
    expected = stored_probs(values, logits)
    for width in (1, 17, 64, 200, 256):  # blocks of 128 values, whole and cut
        frame = np.resize(values, (values.size // width + 1, width))
        assert np.array_equal(quantize_frame(frame, steps), np.resize(expected, frame.shape))
    # each level is where the reference first reaches it: q there >= k + 1, one float below < k + 1
    at, wanted = np.searchsorted(values, steps.levels), np.arange(1, 256)
    assert np.all(expected[at] >= wanted) and np.all(expected[at - 1] < wanted)


def _blocks_frame(logits: bool) -> np.ndarray:
    """float32 [69, 64 x 6 + 7]: whole blocks of 64 values on each constant level (0, 1, 255),
    blocks that mix them or hold the band, and each row's last, shorter block."""
    steps = QuantizationSteps.of(logits)
    rng = np.random.default_rng(5)
    low, high = (-40.0, 40.0) if logits else (0.0, 1.0)
    frame = rng.uniform(low, high, (16 * 4 + 5, 128 * 3 + 7)).astype(np.float32)
    below = steps.support / 2 if not logits else steps.support * 1.5
    frame[:16, :128] = np.float32(below)  # q = 0
    frame[16:32, :128] = np.float32((steps.support + steps.band) / 2)  # q = 1
    frame[32:48, :128] = np.float32(high)  # q = 255
    frame[:16, 128:256] = np.float32(high)
    frame[7, 200] = np.float32(steps.band)  # one band value in a block of 255
    frame[48:64, :256] = np.float32((steps.support + steps.band) / 2)
    frame[50, 3] = np.float32(below)  # a 0 in a block of 1
    frame[60:, 384:] = np.float32(high)  # the last blocks of rows, constant
    return frame


@pytest.mark.parametrize("logits", [True, False])
def test_quantize_frame_fills_constant_blocks_exactly(logits: bool, implementation: str) -> None:
    steps = QuantizationSteps.of(logits)
    frame = _blocks_frame(logits)
    expected = stored_probs(frame, logits)
    out = np.full(frame.shape, 77, np.uint8)
    assert quantize_frame(frame, steps, out=out) is out
    assert np.array_equal(out, expected)
    assert set(np.unique(expected[:48, :128])) == {0, 1, 255}  # the constant blocks are there
    assert np.array_equal(quantize_frame(frame[:, ::-1], steps), expected[:, ::-1])
    assert np.array_equal(quantize_frame(frame[:40, :100], steps), expected[:40, :100])


@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize(
    "at", [(3, 5), (20, 60), (66, 10), (30, 388), (68, 390)]
)  # constant blocks, mixed blocks, a row's last block
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -0.5, 1.5])
def test_quantize_frame_refuses_what_is_not_in_the_domain(
    logits: bool, at: tuple[int, int], bad: float, implementation: str
) -> None:
    frame = _blocks_frame(logits)
    frame[at] = bad
    finite = np.isfinite(bad)
    if logits and finite:
        quantize_frame(frame, QuantizationSteps.of(logits))  # any finite logit is fine
        return
    message = "outside" if finite else "NaN or infinite"
    with pytest.raises(OutOfDomain, match=message):
        quantize_frame(frame, QuantizationSteps.of(logits))


def test_negative_zero_is_a_probability_of_zero(implementation: str) -> None:
    frame = np.array([[-0.0, 0.0, 0.7]], np.float32)
    q = quantize_frame(frame, QuantizationSteps.of(False))
    assert np.array_equal(q, stored_probs(frame, False)) and q[0, 0] == 0


def test_quantize_frame_checks_its_buffers(implementation: str) -> None:
    frame = np.zeros((4, 6), np.float32)
    steps = QuantizationSteps.of(True)
    with pytest.raises(ValueError, match="rows"):
        quantize_frame(frame, steps, rows=np.empty((4, 6), np.uint8))
    with pytest.raises(ValueError, match="out"):
        quantize_frame(frame, steps, out=np.empty((6, 4), np.uint8))


def test_the_kernel_checks_its_buffers() -> None:
    """Sizes are checked in C as well: a wrong buffer is an error, never a write past its end."""
    _require_kernel()
    frame = np.zeros((4, 6), np.float32)
    levels = QuantizationSteps.of(True).levels
    q, rows = np.empty((4, 6), np.uint8), np.empty((4, 7), np.uint8)
    for args, what in (
        ((frame, 4, 7, levels, -1.0, 1.0, q, rows), "values"),
        ((frame, 4, 6, levels[:9], -1.0, 1.0, q, rows), "levels"),
        ((frame, 4, 6, levels, -1.0, 1.0, q[:3], rows), "q"),
        ((frame, 4, 6, levels, -1.0, 1.0, q, rows[:3]), "rows"),
    ):
        with pytest.raises(ValueError, match=what):
            masks._kernels.quantize(*args)


@pytest.mark.parametrize("value", [1, 127, 128, 254])
@pytest.mark.parametrize("at", [(0, 0), (2, 70), (4, 130)])  # first, inside a row, last
def test_decoded_masks_hold_only_0_and_255(
    value: int, at: tuple[int, int], implementation: str
) -> None:
    pixels = np.where(np.random.default_rng(4).random((5, 131)) < 0.4, 255, 0).astype(np.uint8)
    rows = np.concatenate([np.zeros((5, 1), np.uint8), pixels], axis=1)
    assert np.array_equal(decode_mask_png(mask_png_of_rows(rows), "m.png"), pixels == 255)
    rows[at[0], at[1] + 1] = value
    with pytest.raises(InputError, match="values other than 0 and 255"):
        decode_mask_png(mask_png_of_rows(rows), "m.png")


def test_the_mask_kernel_checks_its_buffers() -> None:
    _require_kernel()
    pixels = np.zeros((4, 6), np.uint8)
    with pytest.raises(ValueError, match="out"):
        masks._kernels.mask_of_pixels(pixels, np.empty((4, 5), bool))
    with pytest.raises(ValueError, match="pixels"):
        masks._kernels.mask_of_pixels(np.zeros((4, 12), np.uint8)[:, ::2], np.empty((4, 6), bool))
    out = np.empty((4, 6), bool)
    assert masks._kernels.mask_of_pixels(np.full((4, 7), 255, np.uint8)[:, 1:], out) and out.all()
