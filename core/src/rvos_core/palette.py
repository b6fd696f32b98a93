"""Label maps as indexed (palette) PNGs, the way DAVIS and YouTube-VOS annotations and
semi-supervised predictions are stored: pixel value = object id (0 background)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PALETTE = [0, 0, 0, *(c for k in range(1, 256) for c in ((k * 97) % 256, 255 - k, 128))]
"""Black background, then a distinct colour per id (the colours carry no meaning)."""


def write_label_png(path: Path, labels: np.ndarray) -> None:
    """uint8 [H, W] object ids -> an indexed PNG at ``path``."""
    image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="P")
    image.putpalette(PALETTE)
    image.save(path)
