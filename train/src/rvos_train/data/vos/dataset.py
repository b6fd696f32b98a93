"""The propagators' training sets: indices -> augmented, possibly merged, VOSClips.

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py (VOSTrain.__getitem__, StaticTrain.__getitem__), the trainer's
transform chain (networks/managers/trainer.py ``prepare_dataset``: RandomScale, BalancedRandomCrop,
["v2": colour jitter, grayscale, blur], RandomHorizontalFlip, Resize with padding, ToTensor) and
configs/default.py, pre.py (the DATA_* defaults).
Known differences: all randomness from the caller's generator (upstream: Python's, NumPy's and
torch's global ones); the second sequence of a merge is drawn uniformly among the *other* indices
of the set in one draw (upstream redraws until different: the same distribution), and a set of
one sequence never merges (upstream loops forever); ``max_crop_steps`` defaults to 5, the value
upstream's trainer actually uses (it does not pass DATA_MAX_CROP_STEPS = 10 to the crop).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rvos_core.errors import ConfigError
from rvos_train.data.vos.augment import (
    balanced_crop,
    hflip,
    pad_to,
    random_scale,
    strong_colour_clip,
)
from rvos_train.data.vos.layouts import VideoEntry
from rvos_train.data.vos.merge import merge
from rvos_train.data.vos.sequence import load_sequence
from rvos_train.data.vos.static import static_sequence
from rvos_train.data.vos.static_sets import ImageEntry
from rvos_vos.views import normalize

AUGMENTATIONS = ("v1", "v2")


@dataclass(frozen=True)
class VOSClip:
    """One training sequence of a propagator.

    Attributes:
        frames: float32 [T, 3, H, W], /255 then ImageNet mean / std (as rvos_vos.views.normalize);
            frame 0 the reference, frame 1 upstream's ``prev_img``, frames 2.. its ``curr_img``.
        labels: uint8 [T, H, W]: 0 background, 1..obj_num the objects (consecutive ids).
        obj_num: the number of objects (ids of frame 0's objects; 0 only when none survived).
        source: "<set>/<video or image>", "+"-joined for a merged clip (for messages).
    """

    frames: torch.Tensor
    labels: torch.Tensor
    obj_num: int
    source: str


@dataclass(frozen=True)
class CommonOptions:
    """Options of every set: ``crop_size`` (DATA_RANDOMCROP), ``merge_prob``
    (DATA_DYNAMIC_MERGE_PROB), ``max_obj_num`` (MODEL_MAX_OBJ_NUM), ``aug`` (TRAIN_AUG_TYPE: "v1"
    for AOT, "v2" for DeAOT, which adds colour jitter, grayscale and blur)."""

    crop_size: tuple[int, int] = (464, 464)
    merge_prob: float = 0.3
    max_obj_num: int = 10
    aug: str = "v1"

    def __post_init__(self) -> None:
        if self.aug not in AUGMENTATIONS:
            raise ConfigError(f"aug must be one of {', '.join(AUGMENTATIONS)}, not {self.aug!r}")
        sides = self.crop_size
        if not isinstance(sides, tuple) or len(sides) != 2 or min(sides) < 1:
            raise ConfigError(f"crop_size must be (H, W) of positive sides, not {self.crop_size}")
        if not 1 <= self.max_obj_num <= 127:
            raise ConfigError(f"max_obj_num must be in 1..127, not {self.max_obj_num}")
        if not 0.0 <= self.merge_prob <= 1.0:
            raise ConfigError(f"merge_prob must be in [0, 1], not {self.merge_prob}")


@dataclass(frozen=True)
class VideoOptions(CommonOptions):
    """Options of the video sets: ``scale`` (DATA_MIN/MAX_SCALE_FACTOR), ``short_edge``
    (DATA_SHORT_EDGE_LEN), ``max_crop_steps``, ``flip`` (DATA_RANDOMFLIP), ``random_gap``
    (DATA_RANDOM_GAP_YTB / _DAVIS), ``reverse`` (DATA_RANDOM_REVERSE_SEQ), ``repeat``
    (DATA_DAVIS_REPEAT)."""

    scale: tuple[float, float] = (0.7, 1.3)
    short_edge: int = 480
    max_crop_steps: int = 5
    flip: float = 0.5
    random_gap: int = 3
    reverse: bool = True
    repeat: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.random_gap, self.repeat, self.max_crop_steps, self.short_edge) < 1:
            raise ConfigError("random_gap, repeat, max_crop_steps and short_edge must be >= 1")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale must be (low, high) with 0 < low <= high, not {self.scale}")


@dataclass(frozen=True)
class StaticOptions(CommonOptions):
    """Options of the static set (upstream's PRE stage merges every sample: merge_prob 1)."""

    merge_prob: float = 1.0


Augmented = tuple[np.ndarray, np.ndarray, int]
"""frames float32 [T, H, W, 3] 0..255, labels uint8 [T, H, W] renumbered 1..n, n."""


def _pack(augmented: Augmented, source: str) -> VOSClip:
    frames, labels, obj_num = augmented
    return VOSClip(
        frames=torch.stack([normalize(f) for f in frames]),
        labels=torch.from_numpy(np.ascontiguousarray(labels)),
        obj_num=obj_num,
        source=source,
    )


def _check_index(name: str, index: int, length: int) -> None:
    if not 0 <= index < length:
        raise IndexError(f"{name}: index {index} outside [0, {length})")


class _MergingSet(ABC):
    """What both kinds of set do with an index: entry index mod the entry count, augmented; merged
    with another entry when no object survived or with probability merge_prob (upstream's rule;
    never in a set of one entry)."""

    name: str
    entries: Sequence[VideoEntry] | Sequence[ImageEntry]
    options: CommonOptions
    repeat: int = 1

    def __len__(self) -> int:
        return len(self.entries) * self.repeat

    def clip(self, index: int, rng: np.random.Generator) -> VOSClip:
        """Sample ``index`` as a VOSClip; all randomness from ``rng``."""
        _check_index(self.name, index, len(self))
        count = len(self.entries)
        entry = index % count
        first = self._augmented(entry, rng)
        if count == 1 or (first[2] > 0 and rng.random() >= self.options.merge_prob):
            return _pack(first, self.entries[entry].source)
        other = int(rng.integers(count - 1))
        other += other >= entry
        second = self._augmented(other, rng)
        merged = merge(first[:2], second[:2], self.options.max_obj_num, rng)
        return _pack(merged, f"{self.entries[entry].source}+{self.entries[other].source}")

    @abstractmethod
    def _augmented(self, entry: int, rng: np.random.Generator) -> Augmented:
        """Entry ``entry`` loaded and augmented."""


@dataclass(frozen=True)
class VideoSet(_MergingSet):
    """youtubevos / davis2017: index i is video i mod the number of videos (``repeat`` passes)."""

    name: str
    entries: Sequence[VideoEntry]
    num_frames: int
    options: VideoOptions

    @property
    def repeat(self) -> int:
        return self.options.repeat

    def _augmented(self, entry: int, rng: np.random.Generator) -> Augmented:
        opts = self.options
        frames, labels = load_sequence(
            self.entries[entry], self.num_frames, opts.random_gap, opts.reverse, rng
        )
        frames, labels = random_scale(frames, labels, opts.scale, opts.short_edge, rng)
        frames, labels, obj_num = balanced_crop(
            frames, labels, opts.crop_size, opts.max_crop_steps, opts.max_obj_num, rng
        )
        if opts.aug == "v2":
            frames = strong_colour_clip(frames, rng)
        frames, labels = hflip(frames, labels, opts.flip, rng)
        frames, labels = pad_to(frames, labels, opts.crop_size, rng)
        return frames, labels, obj_num


@dataclass(frozen=True)
class StaticSet(_MergingSet):
    """static: index i is image i, made into a sequence."""

    name: str
    entries: Sequence[ImageEntry]
    num_frames: int
    options: StaticOptions

    def _augmented(self, entry: int, rng: np.random.Generator) -> Augmented:
        opts = self.options
        return static_sequence(
            self.entries[entry],
            self.num_frames,
            opts.crop_size,
            opts.aug == "v2",
            opts.max_obj_num,
            rng,
        )
