"""Frame preprocessing shared by the Video-Swin RVOS models (ReferFormer, MUTR, SOC).

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d, ``ReferFormer/inference_ytvos*.py``,
``MUTR/inference_ytvos.py``, ``MUTR/infer_ytvos_ensemble.py``) applies
``torchvision.transforms.Compose([Resize(size), ToTensor(), Normalize(ImageNet)])`` to PIL images.
Written here without torchvision: the short side becomes ``size`` and the long side
``int(size * long / short)`` (truncated), resampled by PIL's bilinear filter; then uint8 -> float32
/ 255 and per-channel (x - mean) / std. SOC (``soc_test/infer_refytb*.py``) resizes with DETR's
``RandomResize(sizes=[size], max_size)`` instead (``datasets/transforms.py``): when the long side
would exceed ``max_size`` the short-side target becomes ``round(max_size * short / long)``, then the
same truncating rule applies (``max_size`` argument below).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after torchvision ``Resize(size)`` of a ``width`` x ``height`` image."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def detr_short_side(width: int, height: int, size: int, max_size: int | None) -> int:
    """The short-side target of DETR's ``RandomResize([size], max_size)`` for a ``width`` x
    ``height`` image: ``size``, or ``round(max_size * short / long)`` (Python rounding, half to
    even) when ``long / short * size`` exceeds ``max_size``."""
    if max_size is None:
        return size
    short, long = float(min(width, height)), float(max(width, height))
    if long / short * size > max_size:
        return round(max_size * short / long)
    return size


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    """torchvision ``Resize(size)`` on a PIL image (bilinear; unchanged when already that size)."""
    target = resized_size(image.width, image.height, size)
    if target == image.size:
        return image
    return image.resize(target, resample=Image.Resampling.BILINEAR)


def to_normalized_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> float32 [3, H, W]: ToTensor then ImageNet Normalize."""
    pixels = (
        torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    )
    x = pixels.to(torch.float32).div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return x.sub(mean).div(std)


def preprocess_frames(
    frames: Sequence[Image.Image], size: int, max_size: int | None = None
) -> Tensor:
    """All frames of a video -> float32 [T, 3, H, W] (every frame must have the same size).

    ``max_size`` None: torchvision ``Resize(size)``; otherwise DETR ``RandomResize([size],
    max_size)`` (see ``detr_short_side``)."""
    return torch.stack(
        [
            to_normalized_tensor(
                resize_short_side(
                    f.convert("RGB"), detr_short_side(f.width, f.height, size, max_size)
                )
            )
            for f in frames
        ]
    )
