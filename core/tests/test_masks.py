from __future__ import annotations

import io
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rvos_core.errors import InputError
from rvos_core.masks import (
    decode_mask_png,
    encode_mask_png,
    quantize_probs,
    read_mask_png,
    sigmoid_f32,
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
