"""Training data: the train splits of Ref-YouTube-VOS, MeViS and the RefCOCO sets as augmented
clips (rvos_nn.training.Clip), sampled and augmented as the upstream recipes do.

    dataset = open_training_set("refytvos", DATA, recipe="referformer", num_frames=5)
    clip = dataset.clip(i, rng)          # all randomness from rng: same state, same Clip
    joint = open_joint(DATA)             # SOC's joint training: RefCOCO, RefCOCO+, RefCOCOg, Ref-YTVOS

What an index means: ``referformer``, one expression and anchor frame (every num_frames-th frame of
its video); ``soc``, one expression and window of num_frames frames showing its object; RefCOCO
sets, one image entry (one sentence). See docs/training-data.md.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
soc_test/datasets/__init__.py and concat_dataset.py (build_joint), ReferFormer/datasets/__init__.py.
Known differences: SOC's joint set in this snapshot also holds gRefCOCO, which is not read here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rvos_core.errors import ConfigError
from rvos_train.data import mevis, refcoco, refytvos, uninext
from rvos_train.data.clips import ClipDataset, ClipSet, ConcatClips, ImageSample, video_samples
from rvos_train.data.pseudo_video import SeqAugmenter
from rvos_train.data.recipes import RECIPES, ReferFormerAugment, SocAugment
from rvos_train.data.referrals import Referral
from rvos_train.data.transforms import mask_boxes, swap_left_right
from rvos_train.data.uninext import UninextAugment

DATASETS = ("refytvos", "mevis", *refcoco.NAMES)
JOINT = (*refcoco.NAMES, "refytvos")


def open_training_set(
    name: str, data: Path, *, recipe: str, num_frames: int, **options: Any
) -> ClipDataset:
    """The train split of ``name`` (one of DATASETS) found under ``data`` (DATA of paths.env, or
    the dataset's own folder), sampled and augmented by ``recipe`` ("referformer", "soc" or
    "uninext") in clips of ``num_frames`` frames (2 with "uninext": key and reference frame).

    Options: ``strict`` (default True: an expression whose target the annotations show nowhere, or
    whose target every augmentation draw loses, is an InputError; False leaves the first out and
    returns the second with valid all 0), the fields of the recipe's augmentation
    (ReferFormerAugment, SocAugment, UninextAugment), for "referformer" ``max_skip`` (3), for
    "uninext" ``frame_range`` (10).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown training set {name!r}; known: {', '.join(DATASETS)}")
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    if num_frames < 1:
        raise ConfigError(f"num_frames must be at least 1, not {num_frames}")
    spec = RECIPES[recipe]
    strict = bool(options.pop("strict", True))
    draw_options = {k: options.pop(k) for k in spec.draw_options if k in options}
    augment = _augment(spec.augment, recipe, options)
    referrals = _referrals(name, Path(data), strict)
    if isinstance(augment, UninextAugment):
        draws = spec.draws(num_frames, **draw_options)
        images = name in refcoco.NAMES
        return uninext.training_set(name, referrals, draws, augment, images=images, strict=strict)
    if name in refcoco.NAMES:
        samples = [ImageSample(r, num_frames, SeqAugmenter()) for r in referrals]
    else:
        samples = video_samples(referrals, spec.draws(num_frames, **draw_options))
    return ClipSet(name, samples, augment, spec.redraws, strict)


def _augment(
    kind: type[ReferFormerAugment] | type[SocAugment] | type[UninextAugment],
    recipe: str,
    options: dict[str, Any],
) -> ReferFormerAugment | SocAugment | UninextAugment:
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(options) - known)
    if unknown:
        allowed = ", ".join(["strict", *RECIPES[recipe].draw_options, *sorted(known)])
        raise ConfigError(f"recipe {recipe!r} has no option {', '.join(unknown)}; known: {allowed}")
    return kind(**options)


def _referrals(name: str, data: Path, strict: bool) -> list[Referral]:
    if name == "refytvos":
        return refytvos.referrals(data, strict)
    if name == "mevis":
        return mevis.referrals(data, strict)
    return refcoco.referrals(data, name, strict)


def concat(datasets: Sequence[ClipDataset], name: str = "joint") -> ClipDataset:
    """The datasets one after the other (index i of the whole: the part it falls in, in order)."""
    if not datasets:
        raise ConfigError("concat needs at least one dataset")
    return ConcatClips(name, tuple(datasets))


def open_joint(
    data: Path, *, recipe: str = "soc", num_frames: int = 8, **options: Any
) -> ClipDataset:
    """SOC's joint training set (configs/joint.yaml, window 8): RefCOCO, RefCOCO+, RefCOCOg and
    Ref-YouTube-VOS, concatenated in that order."""
    parts = [
        open_training_set(n, data, recipe=recipe, num_frames=num_frames, **options) for n in JOINT
    ]
    return concat(parts)


__all__ = [
    "DATASETS",
    "JOINT",
    "RECIPES",
    "ClipDataset",
    "ReferFormerAugment",
    "SeqAugmenter",
    "SocAugment",
    "UninextAugment",
    "concat",
    "mask_boxes",
    "open_joint",
    "open_training_set",
    "swap_left_right",
]
