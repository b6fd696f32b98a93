"""UNINEXT's training data (recipe "uninext"): per-frame video-joint sampling of (key, reference)
frame pairs and detectron2's augmentations, for Ref-YouTube-VOS, MeViS and the RefCOCO sets.

Per index (one expression): a frame drawn uniformly from the video and a second one at most
``frame_range`` (10) frames before or after it, not itself, in time order (the first is the key
frame); an image becomes the pair (image, image). Both frames must show the target; then, for the
clip: with probability ``crop_p`` (0.5) a crop whose height and width are uniform in
[min(side, 384), min(side, 600)] (detectron2 ``RandomCrop("absolute_range", (384, 600))``), placed
uniformly in each frame; a resize of the short side to one size drawn from ``scales`` with the long
side at most ``max_size`` (detectron2 ``ResizeShortestEdge``, "choice_by_clip": one size per
clip; Ref-YouTube-VOS / MeViS 320..640 and 768, RefCOCO 480..800 and 1333); a horizontal flip with
probability ``flip_p`` (0.5, "flip_by_clip"), which swaps "left" and "right" in the caption.
A draw that leaves a frame without the target is drawn again (``redraws`` times).

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
``UNINEXT/projects/UNINEXT/``: ``uninext/data/dataset_mapper_uni_vid.py``
(``UniVidDatasetMapper.__call__``: the frame pair, static images repeated, the crop / no-crop
branch, ``None`` when a frame has no valid object), ``uninext/data/augmentation.py``
(``build_augmentation``), ``configs/video_joint_r50.yaml`` and ``single_task_rvos.yaml``
(SAMPLING_FRAME_NUM 2, SAMPLING_FRAME_RANGE 10, SAMPLING_INTERVAL 1, the per-dataset sizes, CROP
absolute_range (384, 600)), vendored detectron2 ``transforms/augmentation_impl.py`` (RandomCrop,
ResizeShortestEdge.get_output_shape).

Known differences: upstream's RandomCrop draws size and place for each frame, so the two frames of
a clip can differ in size; a Clip has one size, so the crop size is drawn once per clip (the place
still per frame: the two copies of an image remain two views). Where upstream's mapper gives up on
a pair without the target (it returns None and the loader reads another sample), the same
expression is drawn again here; an expression whose target no pair of frames shows together is
left out. Masks are resized with PyTorch's nearest rule (detectron2: PIL's nearest on RLE masks,
polygons rasterised after the transform: boundaries may differ by a pixel). The caption is
cleaned by the model's training forward (upstream: in the mapper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rvos_core.errors import ConfigError
from rvos_train.data.clips import ClipSet, Raw, Sample, VideoSample
from rvos_train.data.referrals import Referral, read_frames, read_masks
from rvos_train.data.transforms import hflip, resize

CLIP_FRAMES = 2
VIDEO_SCALES = (320, 352, 392, 416, 448, 480, 512, 544, 576, 608, 640)
IMAGE_SCALES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)


@dataclass(frozen=True)
class PairDraw:
    """The (key, reference) frames of a video of ``length`` frames (upstream's SAMPLING_INTERVAL
    1: the second frame is never the first)."""

    length: int
    frame_range: int = 10

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """int64 [2], sorted; [0, 0] for a one-frame video."""
        if self.length == 1:
            return np.zeros(CLIP_FRAMES, np.int64)
        anchor = int(rng.integers(self.length))
        other = rng.choice(self.partners(anchor))
        return np.sort(np.asarray([anchor, other], np.int64))

    def partners(self, anchor: int) -> np.ndarray:
        """The frames that can pair with ``anchor``."""
        low, high = (
            max(0, anchor - self.frame_range),
            min(self.length, anchor + self.frame_range + 1),
        )
        return np.r_[low:anchor, anchor + 1 : high]

    def can_pair(self, present: frozenset[int]) -> bool:
        """Whether some draw gives two frames of ``present``."""
        if self.length == 1:
            return 0 in present
        return any(
            not present.isdisjoint(self.partners(a).tolist()) for a in present if a < self.length
        )


@dataclass(frozen=True)
class ImagePairSample:
    """An image as the pseudo-video (image, image), as upstream repeats a static image."""

    referral: Referral

    def load(self, rng: np.random.Generator, strict: bool) -> Raw:
        image = read_frames(self.referral.frames)
        mask = read_masks(self.referral, [0], image.shape[1:3], strict)
        repeat = np.zeros(CLIP_FRAMES, np.int64)
        return Raw(image[repeat], mask[repeat], repeat)


def shortest_edge_size(height: int, width: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: the short side becomes ``short``,
    both shrink so that the long side is at most ``max_size``; each side rounded half up."""
    scale = short / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


@dataclass(frozen=True)
class UninextAugment:
    """The video-joint augmentation of a (key, reference) clip.

    Attributes:
        scales, max_size: the short sides (one drawn per clip) and the long-side bound for
            videos (Ref-YouTube-VOS's MIN_SIZE_TRAIN_MULTI / MAX_SIZE_TRAIN_MULTI entry).
        image_scales, image_max_size: the same for images (RefCOCO's entry).
        crop_p: probability of the crop branch (upstream: 0.5).
        crop_range: (low, high) of the crop's height and width.
        flip_p: probability of the horizontal flip.
        redraws: augmentation draws before a clip that lost the target in a frame is returned.
    """

    scales: tuple[int, ...] = VIDEO_SCALES
    max_size: int = 768
    image_scales: tuple[int, ...] = IMAGE_SCALES
    image_max_size: int = 1333
    crop_p: float = 0.5
    crop_range: tuple[int, int] = (384, 600)
    flip_p: float = 0.5
    redraws: int = 50

    def for_images(self) -> UninextAugment:
        """The augmentation of the RefCOCO pseudo-videos (their sizes)."""
        return dataclasses.replace(self, scales=self.image_scales, max_size=self.image_max_size)

    def __call__(
        self, frames: np.ndarray, masks: np.ndarray, caption: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """frames uint8 [2, H, W, 3], masks bool [2, H, W] -> the augmented clip and caption
        (the last draw when every draw loses the target in some frame)."""
        for _ in range(self.redraws):
            out = self._draw(frames, masks, caption, rng)
            if out[1].any(axis=(1, 2)).all():
                break
        return out

    def _draw(
        self, frames: np.ndarray, masks: np.ndarray, caption: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, str]:
        if rng.random() < self.crop_p:
            frames, masks = self._crop(frames, masks, rng)
        short = int(self.scales[rng.integers(len(self.scales))])
        frames, masks = resize(
            frames, masks, shortest_edge_size(*frames.shape[1:3], short, self.max_size)
        )
        if rng.random() < self.flip_p:
            frames, masks, caption = hflip(frames, masks, caption)
        return np.ascontiguousarray(frames), np.ascontiguousarray(masks), caption

    def _crop(
        self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One crop size (detectron2's height then width draw), a place per frame."""
        height, width = frames.shape[1:3]
        low, high = self.crop_range
        crop_h = int(rng.integers(min(height, low), min(height, high) + 1))
        crop_w = int(rng.integers(min(width, low), min(width, high) + 1))
        cropped = []
        for frame, mask in zip(frames, masks, strict=True):
            top, left = (
                int(rng.integers(height - crop_h + 1)),
                int(rng.integers(width - crop_w + 1)),
            )
            region = (slice(top, top + crop_h), slice(left, left + crop_w))
            cropped.append((frame[region], mask[region]))
        return np.stack([f for f, _ in cropped]), np.stack([m for _, m in cropped])


def pair_draws(num_frames: int, frame_range: int = 10) -> Callable[[int], list[PairDraw]]:
    """The frame draw of one expression of a video of n frames (clips of 2 frames only)."""
    if num_frames != CLIP_FRAMES:
        raise ConfigError(
            f"the uninext recipe makes (key, reference) clips: num_frames must be 2, not {num_frames}"
        )
    return lambda n: [PairDraw(n, frame_range)]


def training_set(
    name: str,
    referrals: Sequence[Referral],
    draws: Callable[[int], Sequence[PairDraw]],
    augment: UninextAugment,
    *,
    images: bool,
    strict: bool,
) -> ClipSet:
    """The "uninext" training set of ``referrals``: the image pair of each (``images``: the
    RefCOCO sets, at their sizes) or its video's frame pair (``draws``), left out where no pair
    shows the target together."""
    if images:
        return ClipSet(
            name, [ImagePairSample(r) for r in referrals], augment.for_images(), 1, strict
        )
    samples: list[Sample] = [
        VideoSample(r, d, every=True)
        for r in referrals
        for d in draws(len(r.frames))
        if d.can_pair(r.present)
    ]
    return ClipSet(name, samples, augment, 1, strict)
