"""UNINEXT's test-time input pipeline, re-implemented without detectron2.

Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d, vendored detectron2
(``ResizeShortestEdge``, ``ResizeTransform``, ``ImageList``), ``uninext/util/misc.py``
(``nested_tensor_from_tensor_list``) and ``uninext/data/dataset_mapper_ytbvis.py`` (``clean_string``).
Specified in shared/parity/uninext/preprocess/README.md; everything here is exact (uint8 equality for
the resize, bitwise equality for the normalisation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
MIN_SIZE_TEST = 480
MAX_SIZE_TEST = 1333
SIZE_DIVISIBILITY = 32

_PUNCTUATION = re.compile(r"([.,'!?\"()*#:;])")


def clean_expression(text: str) -> str:
    """Upstream ``clean_string``: lower case, drop ``.,'!?"()*#:;``, ``-`` and ``/`` become spaces."""
    return _PUNCTUATION.sub("", text.lower()).replace("-", " ").replace("/", " ")


def resized_shape(
    height: int, width: int, short_edge: int = MIN_SIZE_TEST, max_size: int = MAX_SIZE_TEST
) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: (new_h, new_w), rounded half up.

    The short side becomes ``short_edge``; if the long side then exceeds ``max_size`` both are
    scaled down so that it equals ``max_size``. Computed in Python floats, each side rounded with
    ``int(x + 0.5)``.
    """
    size = float(short_edge)
    scale = size / min(height, width)
    new_h, new_w = (size, scale * width) if height < width else (scale * height, size)
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_frame(
    image: Image.Image, short_edge: int = MIN_SIZE_TEST, max_size: int = MAX_SIZE_TEST
) -> np.ndarray:
    """RGB PIL image -> uint8 [h, w, 3] resized with PIL bilinear (detectron2 ``ResizeTransform``)."""
    new_h, new_w = resized_shape(image.height, image.width, short_edge, max_size)
    return np.asarray(image.convert("RGB").resize((new_w, new_h), Image.BILINEAR))


def normalize(image: Tensor) -> Tensor:
    """uint8 [3, h, w] -> float32 (x - mean) / std with upstream's float32 (3, 1, 1) constants."""
    mean = torch.tensor(PIXEL_MEAN, dtype=torch.float32, device=image.device).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD, dtype=torch.float32, device=image.device).view(3, 1, 1)
    return (image - mean) / std


@dataclass(frozen=True)
class FrameBatch:
    """Normalised frames zero-padded to a common size divisible by ``SIZE_DIVISIBILITY``.

    Attributes:
        tensors: float32 [B, 3, H, W] (padding is 0 in normalised space).
        mask: bool [B, H, W], True on padding.
        image_sizes: (h, w) of each resized frame before padding.
    """

    tensors: Tensor
    mask: Tensor
    image_sizes: tuple[tuple[int, int], ...]


def pad_batch(images: Sequence[Tensor], divisibility: int = SIZE_DIVISIBILITY) -> FrameBatch:
    """[3, h_i, w_i] float frames -> FrameBatch padded to multiples of ``divisibility``.

    ``nested_tensor_from_tensor_list(..., size_divisibility=32)``: each frame copied top-left into a
    zero tensor, mask True outside it.
    """
    if not images:
        raise ValueError("pad_batch needs at least one frame")
    height = max(int(img.shape[1]) for img in images)
    width = max(int(img.shape[2]) for img in images)
    height = -(-height // divisibility) * divisibility
    width = -(-width // divisibility) * divisibility
    first = images[0]
    tensors = first.new_zeros((len(images), 3, height, width))
    mask = torch.ones((len(images), height, width), dtype=torch.bool, device=first.device)
    sizes = []
    for i, img in enumerate(images):
        h, w = int(img.shape[1]), int(img.shape[2])
        tensors[i, :, :h, :w].copy_(img)
        mask[i, :h, :w] = False
        sizes.append((h, w))
    return FrameBatch(tensors, mask, tuple(sizes))


def prepare_frames(
    frames: Sequence[Image.Image],
    short_edge: int = MIN_SIZE_TEST,
    max_size: int = MAX_SIZE_TEST,
    device: torch.device | None = None,
) -> FrameBatch:
    """PIL frames -> resize, normalise, pad: the backbone input of every frame."""
    images = []
    for frame in frames:
        resized = torch.from_numpy(np.array(resize_frame(frame, short_edge, max_size)))
        images.append(normalize(resized.permute(2, 0, 1).to(device)))
    return pad_batch(images)
