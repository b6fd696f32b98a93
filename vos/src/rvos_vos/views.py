"""Test-time views of a frame: scales x horizontal flip, as the competition's AOT evaluator made them.

Upstream: ``dataloaders/video_transforms.py`` (``MultiRestrictSize``, ``MultiToTensor``) and the
frame reader of ``dataloaders/eval_datasets.py`` in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d
(``soc_test/AOT``), driven by ``tools/eval.py --ms 0.8 1.0 1.2 --flip`` (long side capped at
480·1.3·800/480 = 1040 before scaling).

Per scale: the long side is capped at ``max_size``, the size multiplied by the scale (truncated),
each side rounded to a multiple of 16 (NumPy round-half-to-even); OpenCV bicubic resize of the
float frame (skipped when the size is unchanged); /255, ImageNet mean / std. The flipped view is the
same image reversed along the width. Frames are decoded with OpenCV (BGR -> RGB) like upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rvos_core.errors import ConfigError, InputError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViewConfig:
    """Scales, flip, long-side cap and size stride of the test-time views (competition defaults)."""

    scales: tuple[float, ...] = (0.8, 1.0, 1.2)
    flip: bool = True
    max_size: float = 1040.0
    stride: int = 16

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ConfigError("view scales must be positive (e.g. 0.8 1.0 1.2)")
        if self.max_size <= 0:
            raise ConfigError("--max-size must be positive")

    @property
    def per_scale(self) -> int:
        """Views per scale (2 with flip: the frame and its mirror image)."""
        return 2 if self.flip else 1

    def size(self, height: int, width: int, scale: float) -> tuple[int, int]:
        """(h, w) of the view of an ``height`` x ``width`` frame at ``scale``."""
        factor = self.max_size / max(height, width) if max(height, width) > self.max_size else None
        h, w = (factor * height, factor * width) if factor is not None else (height, width)
        return self._round(int(h * scale)), self._round(int(w * scale))

    def _round(self, side: int) -> int:
        if side % self.stride:
            side = int(np.around(side / self.stride) * self.stride)
        return max(side, self.stride)

    def sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        return [self.size(height, width, s) for s in self.scales]


def read_frame(path: Path) -> np.ndarray:
    """float32 [H, W, 3] RGB 0..255, decoded by OpenCV (as upstream)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(path, "frame is missing") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(path, "unreadable image (OpenCV could not decode it)")
    return np.asarray(image, dtype=np.float32)[:, :, ::-1]


def normalize(image: np.ndarray) -> Tensor:
    """float32 [h, w, 3] RGB 0..255 -> [3, h, w], in upstream's operation order and precision."""
    x = image / 255.0
    x -= MEAN
    x /= STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def make_views(image: np.ndarray, config: ViewConfig) -> list[Tensor]:
    """One [B, 3, h, w] tensor per scale; B = 2 with flip (the frame, then its mirror image)."""
    height, width = image.shape[:2]
    views = []
    for h, w in config.sizes(height, width):
        resized = (
            image
            if (h, w) == (height, width)
            else cv2.resize(image, dsize=(w, h), interpolation=cv2.INTER_CUBIC)
        )
        view = normalize(resized)
        views.append(torch.stack([view, view.flip(-1)]) if config.flip else view[None])
    return views


def view_labels(label: Tensor, size: tuple[int, int], flip: bool) -> Tensor:
    """Label map [H, W] -> int64 [B, 1, h, w] per view: mirrored at the original size first,
    then nearest-resized (PyTorch's legacy 'nearest', as upstream)."""
    labels = torch.stack([label, label.flip(-1)]) if flip else label[None]
    resized = F.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return resized.long()
