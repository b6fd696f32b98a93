"""The two training recipes: how each upstream family picks a clip's frames and augments it.

``referformer`` (ReferFormer, MUTR; MeViS's loader is the same): per expression one sample per
anchor ``range(0, len, num_frames)``, frames drawn around it (sampling.LocalGlobal); then flip
(p 0.5, caption sides swapped), the photometric distortion, and with p 0.5 either a resize of the
short side to one of 288..512 (long side <= 640) or a resize to 400/500/600, a crop of 384..600 per
side and the same final resize.

``soc``: per expression one sample per window of ``num_frames`` consecutive frames that shows the
object (sampling.soc_windows); then flip with probability P(N(0, 1) > 0.5) = 0.309 (upstream draws
``torch.randn(1) > 0.5``), the photometric distortion with the same probability when
``random_color`` (off in configs/joint.yaml and refer_youtube_vos.yaml), and a resize of the short
side to 360 with the long side <= 640. No crop.

``uninext``: per expression one (key, reference) pair of frames at most 10 apart, crop (p 0.5), a
short side of 320..640 (videos) or 480..800 (images), flip (p 0.5); images become the pair (image,
image) (rvos_train.data.uninext).

Images (RefCOCO sets) with ``referformer`` and ``soc`` become pseudo-videos of ``num_frames`` frames (pseudo_video) and then go
through the recipe's augmentation: SOC's ref2seq.py with ``soc``, MUTR's refexp2seq.py with
``referformer``.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/ytvos.py (make_coco_transforms('train'), max_size 640 from opts.py) and
MUTR/datasets/refexp2seq.py; soc_test/datasets/refer_youtube_vos/refer_youtube_vos_dataset.py and
soc_test/datasets/coco/ref2seq.py (A2dSentencesTransforms), soc_test/configs/joint.yaml
(train_short_size 360, train_max_size 640, horizontal_flip_augmentations, random_color false),
soc_test/scripts/train_joint.sh (window size 8). Known differences: see transforms, pseudo_video,
sampling and clips. ReferFormer's image-level RefCOCO pretraining transforms (refexp.py: scales
480..768, max 800) are not reproduced; images always go the pseudo-video way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rvos_train.data.sampling import (
    LocalGlobal,
    Window,
    referformer_anchors,
    soc_windows,
)
from rvos_train.data.transforms import (
    detr_size,
    hflip,
    photometric_distort,
    random_resize,
    random_size_crop,
    resize,
)
from rvos_train.data.uninext import PairDraw, UninextAugment, pair_draws


@dataclass(frozen=True)
class ReferFormerAugment:
    """ReferFormer's make_coco_transforms('train') on a clip.

    Attributes:
        scales: final short sides, one drawn per clip.
        max_size: bound on the final long side.
        crop_scales: short sides before the crop (no bound on the long side).
        crop_range: (low, high) of the crop's width and height.
        flip_p: probability of the horizontal flip.
        resize_only_p: probability of the branch without crop.
        photometric: whether the photometric distortion runs (per frame, own draws).
    """

    scales: tuple[int, ...] = (288, 320, 352, 392, 416, 448, 480, 512)
    max_size: int = 640
    crop_scales: tuple[int, ...] = (400, 500, 600)
    crop_range: tuple[int, int] = (384, 600)
    flip_p: float = 0.5
    resize_only_p: float = 0.5
    photometric: bool = True

    def __call__(
        self, frames: np.ndarray, masks: np.ndarray, caption: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """frames uint8 [T, H, W, 3], masks bool [T, H, W] -> the augmented clip and caption."""
        if rng.random() < self.flip_p:
            frames, masks, caption = hflip(frames, masks, caption)
        if self.photometric:
            frames = np.stack([photometric_distort(f, rng) for f in frames])
        if rng.random() >= self.resize_only_p:
            frames, masks = random_resize(frames, masks, self.crop_scales, None, rng)
            frames, masks = random_size_crop(frames, masks, *self.crop_range, rng)
        frames, masks = random_resize(frames, masks, self.scales, self.max_size, rng)
        return frames, masks, caption


@dataclass(frozen=True)
class SocAugment:
    """SOC's A2dSentencesTransforms('train') on a clip.

    Attributes:
        short_size: the short side after resizing (train_short_size).
        max_size: bound on the long side (train_max_size).
        hflip: horizontal_flip_augmentations; the flip happens when a standard normal draw > 0.5.
        random_color: the photometric distortion, when another standard normal draw > 0.5.
    """

    short_size: int = 360
    max_size: int = 640
    hflip: bool = True
    random_color: bool = False

    def __call__(
        self, frames: np.ndarray, masks: np.ndarray, caption: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """frames uint8 [T, H, W, 3], masks bool [T, H, W] -> the augmented clip and caption."""
        if self.hflip and rng.standard_normal() > 0.5:
            frames, masks, caption = hflip(frames, masks, caption)
        if self.random_color and rng.standard_normal() > 0.5:
            frames = np.stack([photometric_distort(f, rng) for f in frames])
        size = detr_size(*frames.shape[1:3], self.short_size, self.max_size)
        frames, masks = resize(frames, masks, size)
        return frames, masks, caption


def referformer_draws(num_frames: int, max_skip: int = 3) -> Callable[[int], list[LocalGlobal]]:
    """The frame draws of one expression of a video of n frames: one per anchor."""
    return lambda n: [
        LocalGlobal(a, n, num_frames, max_skip) for a in referformer_anchors(n, num_frames)
    ]


def soc_draws(num_frames: int) -> Callable[[int], list[Window]]:
    """The windows of one expression of a video of n frames."""
    return lambda n: [Window(w) for w in soc_windows(n, num_frames)]


@dataclass(frozen=True)
class Recipe:
    """A recipe: its augmentation type, the options of its frame draws, how many augmentation
    draws a clip gets before a lost target is given up (only a crop can lose it)."""

    augment: type[ReferFormerAugment] | type[SocAugment] | type[UninextAugment]
    draws: Callable[..., Callable[[int], Sequence[LocalGlobal | Window | PairDraw]]]
    draw_options: tuple[str, ...] = ()
    redraws: int = 1


RECIPES = {
    "referformer": Recipe(ReferFormerAugment, referformer_draws, ("max_skip",), redraws=50),
    "soc": Recipe(SocAugment, soc_draws),
    "uninext": Recipe(UninextAugment, pair_draws, ("frame_range",)),
}
