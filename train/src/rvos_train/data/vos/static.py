"""A training sequence synthesised from one static image and its object mask (the PRE stage).

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py (StaticTrain.sample_sequence) and dataloaders/image_transforms.py.
The image (and mask) is mirrored with p 0.5; then each of the T frames starts from it: frames
1.. are mirrored with p 0.3 and warped by RandomAffine (rotation ±20°, translation ±10 %, scale
0.9..1.1, x-shear ±10°); every frame gets the colour jitter ("v1": ColorJitter(0.1, 0.1, 0.1,
0.03) always; "v2": the strong colour steps) and a RandomResizedCrop (area 0.8..1, aspect
3/4..4/3 of the crop's) resized to the crop size (bicubic, mask nearest). The ids of the first
frame's objects, shuffled and cut to ``max_objects``, become 1..n in every frame.
Known differences: the warp matrix is composed here (see augment.py); an image whose first frame
keeps no object gives a sequence without objects (upstream then takes the ids of a later frame).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from rvos_core.data import open_image
from rvos_train.data.vos.augment import (
    STATIC_JITTER,
    Affine,
    color_jitter,
    gray_and_blur,
    renumber,
    resized_crop_box,
    strong_jitter,
)
from rvos_train.data.vos.static_sets import ImageEntry

AFFINE = Affine()


def load_image(entry: ImageEntry) -> tuple[Image.Image, Image.Image]:
    """The RGB image (Pillow-decoded, as upstream) and its label mask (mode L, pixel = object id),
    checked to be one size."""
    image = open_image(entry.image)
    return image, Image.fromarray(entry.labels.read((image.height, image.width)), "L")


def static_sequence(
    entry: ImageEntry,
    num_frames: int,
    size: tuple[int, int],
    strong: bool,
    max_objects: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """frames float32 [T, H, W, 3] (``size`` = (H, W)), labels uint8 [T, H, W] renumbered 1..n,
    and n."""
    image, mask = load_image(entry)
    if rng.random() < 0.5:
        image, mask = _mirror(image), _mirror(mask)
    frames, masks = [], []
    for t in range(num_frames):
        frame, frame_mask = _synthesise(image, mask, t > 0, size, strong, rng)
        frames.append(np.asarray(frame, np.float32))
        masks.append(np.asarray(frame_mask, np.uint8))
    labels = np.stack(masks)
    present = np.flatnonzero(np.bincount(labels[0].ravel(), minlength=256)[1:]) + 1
    ids = [int(i) for i in rng.permutation(present)[:max_objects]]
    return np.stack(frames), renumber(labels, ids), len(ids)


def _mirror(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _synthesise(
    image: Image.Image,
    mask: Image.Image,
    moved: bool,
    size: tuple[int, int],
    strong: bool,
    rng: np.random.Generator,
) -> tuple[Image.Image, Image.Image]:
    """One frame: (when ``moved``) flip p 0.3 and the affine warp; colour jitter; the resized
    crop; with ``strong``, grayscale and blur."""
    if moved:
        if rng.random() < 0.3:
            image, mask = _mirror(image), _mirror(mask)
        image, mask = AFFINE.warp(image, mask, rng)
    image = strong_jitter(image, rng) if strong else color_jitter(image, STATIC_JITTER, rng)
    top, left, h, w = resized_crop_box((image.height, image.width), size, rng)
    box = (left, top, left + w, top + h)
    out = (size[1], size[0])
    image = image.crop(box).resize(out, Image.BICUBIC)
    if strong:
        image = gray_and_blur(image, rng)
    return image, mask.crop(box).resize(out, Image.NEAREST)
