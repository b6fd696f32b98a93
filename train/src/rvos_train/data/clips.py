"""Training sets of clips: samples (what an index means), loading, augmentation, the Clip.

A sample is one referral with a way to pick its frames: an anchor and ReferFormer's draw, a fixed
SOC window, or an image made into a pseudo-video. ``ClipSet.clip(i, rng)`` loads sample i, augments
it and packs the Clip; every random draw comes from ``rng``, so the same generator state gives the
same Clip bit for bit.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/ytvos.py (__getitem__), soc_test/datasets/refer_youtube_vos/
refer_youtube_vos_dataset.py, soc_test/datasets/coco/ref2seq.py, soc_test/datasets/concat_dataset.py
(torch's ConcatDataset). Known differences: when the drawn frames do not show the target, or the
augmentation (a crop) removes it from every frame, upstream reads a random *other* sample from
Python's global generator; here the same sample is drawn again from ``rng`` (frames until one the
annotations list as showing the target, augmentation up to the recipe's ``redraws``, and the whole
again with other frames up to CLIP_DRAWS times), so every index keeps its own expression; a target
still lost after that is an InputError under ``strict``, or is
returned with ``valid`` all zero otherwise (as SOC does, which never checks).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

import numpy as np
import torch

from rvos_core.errors import InputError
from rvos_nn.training import Clip
from rvos_train.data.pseudo_video import SeqAugmenter, pseudo_clip
from rvos_train.data.referrals import Referral, read_frames, read_masks
from rvos_train.data.transforms import mask_boxes, normalise

FRAME_DRAWS = 1000
# Draws of a clip's frames when the augmentation loses the target in every frame (a sliver of an
# object that enters or leaves, shrunk by the resize or cut by the crop).
CLIP_DRAWS = 20

Augment = Callable[
    [np.ndarray, np.ndarray, str, np.random.Generator], tuple[np.ndarray, np.ndarray, str]
]
"""(frames uint8 [T, H, W, 3], masks bool [T, H, W], caption, rng) -> the same, augmented."""


@dataclass(frozen=True)
class Raw:
    """A loaded clip before augmentation: frames uint8 [T, H, W, 3], masks bool [T, H, W],
    frame_ids int64 [T] (indices into the video's frames)."""

    frames: np.ndarray
    masks: np.ndarray
    frame_ids: np.ndarray


class FrameDraw(Protocol):
    def __call__(self, rng: np.random.Generator) -> np.ndarray: ...

    def reachable(self) -> Sequence[int]: ...


class Sample(Protocol):
    referral: Referral

    def load(self, rng: np.random.Generator, strict: bool) -> Raw: ...


@dataclass(frozen=True)
class VideoSample:
    """Frames of a video picked by ``draw``, drawn again until one of them shows the target
    (``every``: until all of them do)."""

    referral: Referral
    draw: FrameDraw
    every: bool = False

    def load(self, rng: np.random.Generator, strict: bool) -> Raw:
        indices = self._indices(rng)
        frames = read_frames([self.referral.frames[i] for i in indices])
        masks = read_masks(self.referral, indices, frames.shape[1:3], strict)
        return Raw(frames, masks, indices)

    def _indices(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(FRAME_DRAWS):
            indices = self.draw(rng)
            present = self.referral.present
            shown = [i in present for i in indices.tolist()]
            if all(shown) if self.every else any(shown):
                return indices
        missed = "drew no frames that all show" if self.every else "missed every frame that shows"
        raise InputError(
            self.referral.frames[0].parent,
            f"{self.referral.source}: {FRAME_DRAWS} draws of frames {missed} the target "
            f"({sorted(self.referral.present)})",
        )


@dataclass(frozen=True)
class ImageSample:
    """An image made into a pseudo-video of ``num_frames`` frames (frame_ids all 0)."""

    referral: Referral
    num_frames: int
    augmenter: SeqAugmenter

    def load(self, rng: np.random.Generator, strict: bool) -> Raw:
        image = read_frames(self.referral.frames)
        mask = read_masks(self.referral, [0], image.shape[1:3], strict)
        frames, masks = pseudo_clip(image[0], mask[0], self.num_frames, self.augmenter, rng)
        return Raw(frames, masks, np.zeros(self.num_frames, np.int64))


def video_samples(
    referrals: Sequence[Referral], draws: Callable[[int], Sequence[FrameDraw]]
) -> list[Sample]:
    """The samples of each referral, one per draw of ``draws(number of frames)`` that can reach a
    frame showing the target."""
    return [
        VideoSample(referral, draw)
        for referral in referrals
        for draw in draws(len(referral.frames))
        if not referral.present.isdisjoint(draw.reachable())
    ]


@dataclass(frozen=True)
class ClipSet:
    """A training set: ``samples[i]`` loaded, augmented and packed as a Clip.

    Attributes:
        name: the dataset's name ("refytvos", "mevis", "refcoco", ...).
        samples: what each index means.
        augment: the recipe's augmentation.
        redraws: augmentation draws before a target lost in every frame is given up.
        strict: bad or contradictory annotations and lost targets are InputErrors.
    """

    name: str
    samples: Sequence[Sample]
    augment: Augment
    redraws: int
    strict: bool

    def __len__(self) -> int:
        return len(self.samples)

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        """Sample ``index`` as a Clip; all randomness from ``rng``."""
        if not 0 <= index < len(self.samples):
            raise IndexError(f"{self.name}: index {index} outside [0, {len(self.samples)})")
        sample = self.samples[index]
        for _ in range(CLIP_DRAWS):
            raw = sample.load(rng, self.strict)
            for _ in range(self.redraws):
                frames, masks, caption = self.augment(
                    raw.frames, raw.masks, sample.referral.caption, rng
                )
                if masks.any():
                    return pack(frames, masks, caption, raw, sample.referral.source)
        if self.strict:
            raise InputError(
                sample.referral.frames[0].parent,
                f"{sample.referral.source}: the target is in none of the clip's frames after "
                f"{CLIP_DRAWS} draws of frames x {self.redraws} augmentation draws (last frames "
                f"{raw.frame_ids.tolist()}; too small for the resize?); strict=False returns such "
                "clips with valid all 0",
            )
        return pack(frames, masks, caption, raw, sample.referral.source)


def pack(frames: np.ndarray, masks: np.ndarray, caption: str, raw: Raw, source: str) -> Clip:
    """The Clip of augmented frames uint8 [T, H, W, 3] and masks bool [T, H, W]."""
    masks = np.ascontiguousarray(masks)
    return Clip(
        frames=torch.from_numpy(normalise(frames)),
        masks=torch.from_numpy(masks),
        boxes=torch.from_numpy(mask_boxes(masks)),
        valid=torch.from_numpy(masks.any(axis=(1, 2)).astype(np.int32)),
        caption=caption,
        frame_ids=torch.from_numpy(raw.frame_ids.astype(np.int64)),
        orig_size=(int(raw.frames.shape[1]), int(raw.frames.shape[2])),
        source=source,
    )


class ClipDataset(Protocol):
    """What the training engine reads: ``len()`` samples, each a Clip drawn with a given rng."""

    name: str

    def __len__(self) -> int: ...

    def clip(self, index: int, rng: np.random.Generator) -> Clip: ...


@dataclass(frozen=True)
class ConcatClips:
    """Datasets one after the other (torch's ConcatDataset order): index i of the whole is index
    i - offset of the part it falls in."""

    name: str
    parts: tuple[ClipDataset, ...]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        ends = list(accumulate(len(p) for p in self.parts))
        if not 0 <= index < ends[-1]:
            raise IndexError(f"{self.name}: index {index} outside [0, {ends[-1]})")
        part = bisect.bisect_right(ends, index)
        return self.parts[part].clip(index - (ends[part - 1] if part else 0), rng)
