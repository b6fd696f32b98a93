"""Frame preprocessing shared by the Video-Swin RVOS models (ReferFormer, MUTR).

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d, ``ReferFormer/inference_ytvos*.py``,
``MUTR/inference_ytvos.py``, ``MUTR/infer_ytvos_ensemble.py``) applies
``torchvision.transforms.Compose([Resize(size), ToTensor(), Normalize(ImageNet)])`` to PIL images.
Written here without torchvision: the short side becomes ``size`` and the long side
``int(size * long / short)`` (truncated), resampled by PIL's bilinear filter; then uint8 -> float32
/ 255 and per-channel (x - mean) / std.
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


def preprocess_frames(frames: Sequence[Image.Image], size: int) -> Tensor:
    """All frames of a video -> float32 [T, 3, H, W] (every frame must have the same size)."""
    return torch.stack(
        [to_normalized_tensor(resize_short_side(f.convert("RGB"), size)) for f in frames]
    )
