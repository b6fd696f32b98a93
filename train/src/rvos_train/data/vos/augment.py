"""Augmentations of the propagators' training clips: random scale, the balanced crop, colour
(jitter, grayscale, blur), flip, padding, and the affine and resized-crop warps of static images.

A clip here is frames float32 [T, H, W, 3] (RGB, 0..255, as OpenCV decodes them) and labels uint8
[T, H, W] (0 background, object ids). Every random draw comes from the ``numpy.random.Generator``
passed in.

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/video_transforms.py (RandomScale, BalancedRandomCrop, RandomColorJitter,
RandomGrayScale, RandomGaussianBlur, RandomHorizontalFlip, Resize with padding) and
dataloaders/image_transforms.py (RandomAffine, RandomResizedCrop, GaussianBlur), with
torchvision's ColorJitter / RandomGrayscale / affine on PIL images.
Known differences: frames go to uint8 for the colour steps by clipping to [0, 255] (upstream's
``np.uint8`` wraps the bicubic overshoot around); the affine warp is composed here (rotation about
the centre, x-shear, scale, translation, inverted for PIL), with torchvision's parameter
distributions, not its exact matrix code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

PAD_COLOUR = (124, 116, 104)
MIN_OBJECT_PIXELS = 100


@dataclass(frozen=True)
class Jitter:
    """torchvision ColorJitter strengths: factors in [1 - s, 1 + s], hue shift in [-hue, hue]."""

    brightness: float
    contrast: float
    saturation: float
    hue: float


STATIC_JITTER = Jitter(0.1, 0.1, 0.1, 0.03)
STRONG_JITTER = Jitter(0.4, 0.4, 0.2, 0.1)


def random_scale(
    frames: np.ndarray,
    labels: np.ndarray,
    scales: tuple[float, float],
    short_edge: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One factor uniform in ``scales`` times short_edge / short side, for the whole clip:
    frames bicubic, labels nearest (OpenCV, factor form as upstream)."""
    factor = rng.uniform(*scales) * short_edge / min(frames.shape[1:3])
    scaled = [
        cv2.resize(f, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC) for f in frames
    ]
    masks = [
        cv2.resize(m, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) for m in labels
    ]
    return np.stack(scaled), np.stack(masks)


def balanced_crop(
    frames: np.ndarray,
    labels: np.ndarray,
    size: tuple[int, int],
    max_steps: int,
    max_objects: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """BalancedRandomCrop: up to ``max_steps`` uniform positions of a ``size`` window (each side
    at most the frame's) until the reference frame's crop keeps an object of more than 100
    pixels; its kept objects (at most ``max_objects``, a random subset when more) become ids
    1..n in id order (shuffled when subset), everything else background. Returns frames,
    labels and n."""
    height, width = frames.shape[1:3]
    crop_h, crop_w = min(size[0], height), min(size[1], width)
    kept: list[int] = []
    for _ in range(max_steps):
        top, left = rng.integers(height - crop_h + 1), rng.integers(width - crop_w + 1)
        window = (slice(None), slice(top, top + crop_h), slice(left, left + crop_w))
        kept = _large_objects(labels[window][0])
        if len(kept) > max_objects:
            kept = [kept[i] for i in rng.permutation(len(kept))[:max_objects]]
        if kept:
            break
    return frames[window], renumber(labels[window], kept), len(kept)


def _large_objects(labels: np.ndarray) -> list[int]:
    counts = np.bincount(labels.ravel(), minlength=256)
    return [int(i) for i in np.flatnonzero(counts[1:] > MIN_OBJECT_PIXELS) + 1]


def renumber(labels: np.ndarray, ids: list[int]) -> np.ndarray:
    """uint8 labels where ``ids[k]`` becomes k + 1 and every other value 0."""
    table = np.zeros(256, np.uint8)
    table[ids] = np.arange(1, len(ids) + 1)
    return table[labels]


def to_pil(frame: np.ndarray) -> Image.Image:
    """float [H, W, 3] 0..255 -> RGB image (clipped, truncated as ``np.uint8`` does)."""
    return Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8))


def color_jitter(image: Image.Image, jitter: Jitter, rng: np.random.Generator) -> Image.Image:
    """torchvision ColorJitter on a PIL image: the four adjustments in a random order, each factor
    drawn once."""
    factors = [
        rng.uniform(max(0.0, 1 - jitter.brightness), 1 + jitter.brightness),
        rng.uniform(max(0.0, 1 - jitter.contrast), 1 + jitter.contrast),
        rng.uniform(max(0.0, 1 - jitter.saturation), 1 + jitter.saturation),
        rng.uniform(-jitter.hue, jitter.hue),
    ]
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    for step in rng.permutation(4):
        if step == 3:
            image = _shift_hue(image, factors[3])
        else:
            image = enhancers[step](image).enhance(factors[step])
    return image


def _shift_hue(image: Image.Image, shift: float) -> Image.Image:
    """torchvision's PIL hue adjustment: the uint8 hue channel moved by shift·255, wrapping."""
    hue, saturation, value = image.convert("HSV").split()
    moved = (np.asarray(hue, np.int64) + int(shift * 255)) % 256
    hsv = (Image.fromarray(moved.astype(np.uint8), "L"), saturation, value)
    return Image.merge("HSV", hsv).convert("RGB")


def strong_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """DeAOT's ("v2") RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), p 0.8)."""
    return color_jitter(image, STRONG_JITTER, rng) if rng.random() < 0.8 else image


def gray_and_blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """DeAOT's ("v2") grayscale with p 0.2, then Gaussian blur of sigma uniform in [0.1, 2] with
    p 0.3."""
    if rng.random() < 0.2:
        image = image.convert("L").convert("RGB")
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))
    return image


def strong_colour_clip(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DeAOT's ("v2") colour steps on each frame of float [T, H, W, 3], each with its own draws:
    ``strong_jitter``, then ``gray_and_blur``."""
    coloured = [gray_and_blur(strong_jitter(to_pil(f), rng), rng) for f in frames]
    return np.stack([np.asarray(c, np.float32) for c in coloured])


def hflip(
    frames: np.ndarray, labels: np.ndarray, p: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The whole clip mirrored left-right with probability ``p``."""
    if rng.random() < p:
        return frames[:, :, ::-1], labels[:, :, ::-1]
    return frames, labels


def pad_to(
    frames: np.ndarray, labels: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pad to ``size`` (H, W), the margin split at random (top, then left): frames with
    upstream's mean colour (124, 116, 104), labels with 0."""
    height, width = frames.shape[1:3]
    top = rng.integers(size[0] - height + 1)
    left = rng.integers(size[1] - width + 1)
    spread = ((0, 0), (top, size[0] - height - top), (left, size[1] - width - left))
    padded = np.empty((len(frames), *size, 3), np.float32)
    for c, value in enumerate(PAD_COLOUR):
        padded[..., c] = np.pad(frames[..., c], spread, constant_values=value)
    return padded, np.pad(labels, spread, constant_values=0)


@dataclass(frozen=True)
class Affine:
    """torchvision RandomAffine(degrees=20, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)."""

    degrees: float = 20.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    shear: float = 10.0

    def warp(
        self, image: Image.Image, mask: Image.Image, rng: np.random.Generator
    ) -> tuple[Image.Image, Image.Image]:
        """One draw applied to both: image bicubic filled with (124, 116, 104), mask nearest
        filled with 0."""
        width, height = image.size
        angle = rng.uniform(-self.degrees, self.degrees)
        dx = round(rng.uniform(-self.translate * width, self.translate * width))
        dy = round(rng.uniform(-self.translate * height, self.translate * height))
        factor = rng.uniform(*self.scale)
        shear = rng.uniform(-self.shear, self.shear)
        coeffs = _inverse_affine((width * 0.5, height * 0.5), angle, (dx, dy), factor, shear)
        warped = image.transform(
            image.size, Image.AFFINE, coeffs, Image.BICUBIC, fillcolor=PAD_COLOUR
        )
        return warped, mask.transform(mask.size, Image.AFFINE, coeffs, Image.NEAREST, fillcolor=0)


def _inverse_affine(
    centre: tuple[float, float],
    angle: float,
    translate: tuple[float, float],
    scale: float,
    shear: float,
) -> tuple[float, ...]:
    """PIL's output -> input coefficients of: about ``centre``, rotate by ``angle`` degrees
    (counter-clockwise on screen), shear x by ``shear`` degrees, scale, then translate."""
    a, s = math.radians(angle), math.radians(shear)
    rotate = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    forward = scale * rotate @ np.array([[1.0, math.tan(s)], [0.0, 1.0]])
    cx, cy = centre
    offset = np.array([cx + translate[0], cy + translate[1]]) - forward @ np.array([cx, cy])
    inverse = np.linalg.inv(forward)
    shift = -inverse @ offset
    return (*inverse[0], shift[0], *inverse[1], shift[1])


def resized_crop_box(
    size: tuple[int, int], out_size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """RandomResizedCrop's region (top, left, h, w) of an image of ``size`` (H, W): area fraction
    uniform in [0.8, 1], aspect (w/h) log-uniform in out_size's aspect × [3/4, 4/3]; ten draws,
    then the central crop of the nearest allowed aspect."""
    height, width = size
    base = out_size[1] / out_size[0]
    low, high = base * 3 / 4, base * 4 / 3
    for _ in range(10):
        area = rng.uniform(0.8, 1.0) * height * width
        aspect = math.exp(rng.uniform(math.log(low), math.log(high)))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w
    ratio = width / height
    h, w = height, width
    if ratio < low:
        h = round(width / low)
    elif ratio > high:
        w = round(height * high)
    return (height - h) // 2, (width - w) // 2, h, w
