"""Clip transforms shared by the recipes: flip (with the caption's left/right), DETR's resize rule,
random-size crop, the photometric distortion, boxes from masks, normalisation.

A clip is frames uint8 [T, H, W, 3] (RGB) and masks bool [T, H, W]; every random draw comes from
the ``numpy.random.Generator`` passed in.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/transforms_video.py (hflip, resize, RandomSizeCrop, PhotometricDistort, Check,
Normalize) and soc_test/datasets/transforms.py (the same resize and PhotometricDistort).
Known differences:
- the caption swap is word-initial ("left" -> "right", "leftmost" -> "rightmost"); upstream
  replaces the substrings anywhere ("bright" -> "bleft", "upright" -> "upleft").
- boxes and validity are recomputed from the final masks (``mask_boxes``: x2, y2 = the last
  pixel's index, upstream's convention); upstream moves the boxes with each transform and ReferFormer
  then calls a frame valid when its box has positive width and height, so a one-pixel-wide object
  is invalid there and valid here.
- the photometric distortion clips to [0, 255] before going back to uint8; upstream's
  ``astype('uint8')`` wraps out-of-range values around. Like upstream, it converts with OpenCV's
  BGR<->HSV on RGB data, which turns the hue shift the other way (the shift is symmetric).
- the crop's lower bound is lowered to the image side when the side is shorter (upstream raises).
"""

from __future__ import annotations

import re

import cv2
import numpy as np
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
_SIDE = re.compile(r"\b(left|right)")


def swap_left_right(caption: str) -> str:
    """The caption of the mirrored clip: each word starting with "left" starts with "right" and
    the other way round."""
    return _SIDE.sub(lambda m: "right" if m.group(1) == "left" else "left", caption)


def hflip(
    frames: np.ndarray, masks: np.ndarray, caption: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Mirror frames [T, H, W, 3] and masks [T, H, W] left-right and swap the caption's sides."""
    return frames[:, :, ::-1], masks[:, :, ::-1], swap_left_right(caption)


def detr_size(height: int, width: int, short: int, max_size: int | None) -> tuple[int, int]:
    """(H, W) after DETR's resize: the short side becomes ``short``, or less so that the long side
    stays within ``max_size``; the other side keeps the aspect ratio (rounded down)."""
    low, high = sorted((height, width))
    if max_size is not None and high / low * short > max_size:
        short = round(max_size * low / high)
    if low == short:
        return height, width
    if width < height:
        return int(short * height / width), short
    return short, int(short * width / height)


def resize(
    frames: np.ndarray, masks: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Frames bilinear (Pillow, as torchvision resizes PIL images) and masks nearest (PyTorch's
    index rule, as upstream's ``interpolate``) to ``size`` = (H, W)."""
    height, width = size
    if frames.shape[1:3] == size:
        return frames, masks
    resized = [
        np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames
    ]
    rows = _nearest(masks.shape[1], height)
    cols = _nearest(masks.shape[2], width)
    return np.stack(resized), masks[:, rows][:, :, cols]


def _nearest(source: int, target: int) -> np.ndarray:
    """int [target]: PyTorch's nearest source index, floor(i * source / target) in float32."""
    scale = np.float32(source / target)
    index = np.floor(np.arange(target, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, source - 1)


def random_resize(
    frames: np.ndarray,
    masks: np.ndarray,
    scales: tuple[int, ...],
    max_size: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """DETR's RandomResize: one short side drawn uniformly from ``scales`` for the whole clip."""
    short = int(scales[rng.integers(len(scales))])
    return resize(frames, masks, detr_size(*frames.shape[1:3], short, max_size))


def random_size_crop(
    frames: np.ndarray, masks: np.ndarray, low: int, high: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """DETR's RandomSizeCrop, one region for the whole clip: width and height uniform in
    [low, min(side, high)], then the position uniform over the places the region fits."""
    height, width = frames.shape[1:3]
    crop_w = rng.integers(min(low, width), min(width, high) + 1)
    crop_h = rng.integers(min(low, height), min(height, high) + 1)
    top = rng.integers(height - crop_h + 1)
    left = rng.integers(width - crop_w + 1)
    region = (slice(None), slice(top, top + crop_h), slice(left, left + crop_w))
    return frames[region], masks[region]


def photometric_distort(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [H, W, 3]: each with probability 1/2, a brightness shift in
    [-32, 32], a contrast factor in [0.5, 1.5] (before or after the HSV step, 1/2 each), a
    saturation factor in [0.5, 1.5], a hue shift in [-18, 18] degrees, a channel permutation."""
    image = frame.astype(np.float32)
    if rng.integers(2):
        image += rng.uniform(-32, 32)
    contrast_first = bool(rng.integers(2))
    if contrast_first:
        image = _contrast(image, rng)
    image = _hsv_jitter(image, rng)
    if not contrast_first:
        image = _contrast(image, rng)
    if rng.integers(2):
        image = image[..., CHANNEL_ORDERS[rng.integers(len(CHANNEL_ORDERS))]]
    return np.clip(image, 0, 255).astype(np.uint8)


def _contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return image * rng.uniform(0.5, 1.5) if rng.integers(2) else image


def _hsv_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Saturation and hue jitter in OpenCV's float HSV (hue in degrees), upstream's BGR reading."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    if rng.integers(2):
        hsv[..., 1] *= rng.uniform(0.5, 1.5)
    if rng.integers(2):
        hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-18, 18), 360)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """float32 [T, 4]: (cx, cy, w, h) of each mask of bool [T, H, W], normalised by (W, H, W, H),
    from the first and last row and column it covers (x2, y2 = the last pixel's index, as
    upstream's ``bounding_box`` and torchvision's ``masks_to_boxes``); zeros for an empty mask."""
    _, height, width = masks.shape
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    y1, y2 = rows.argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)
    x1, x2 = cols.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([x1 + x2, y1 + y2, 2 * (x2 - x1), 2 * (y2 - y1)], axis=1)
    boxes = boxes / np.array([2 * width, 2 * height, 2 * width, 2 * height], np.float64)
    boxes[~rows.any(axis=1)] = 0
    return boxes.astype(np.float32)


def normalise(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W]: /255, then ImageNet mean and std."""
    scaled = frames.astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(((scaled - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2))
