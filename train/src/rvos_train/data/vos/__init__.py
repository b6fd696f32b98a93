"""Training data of the AOT / DeAOT propagators: YouTube-VOS 2019 train, DAVIS-2017 train and the
static image sets of the PRE stage, as augmented sequences (VOSClip), sampled and augmented as
upstream's trainer does.

    dataset = open_vos_set("youtubevos", DATA, num_frames=5)
    clip = dataset.clip(i, rng)        # all randomness from rng: same state, same VOSClip
    main = concat([open_vos_set("youtubevos", DATA, num_frames=5),
                   open_vos_set("davis2017", DATA, num_frames=5)])   # upstream's PRE_YTB_DAV

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py, dataloaders/video_transforms.py, dataloaders/image_transforms.py,
networks/managers/trainer.py (prepare_dataset), configs/default.py, pre.py, pre_ytb_dav.py.
Known differences: see the submodules and docs/training-data.md ("Propagator training data").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from rvos_core.errors import ConfigError
from rvos_train.data import concat
from rvos_train.data.vos import layouts, static_sets
from rvos_train.data.vos.dataset import (
    CommonOptions,
    StaticOptions,
    StaticSet,
    VideoOptions,
    VideoSet,
    VOSClip,
)

Options = TypeVar("Options", bound=CommonOptions)

VOS_DATASETS = ("static", "youtubevos", "davis2017")
VIDEO_DEFAULTS = {
    "youtubevos": {"random_gap": 3, "repeat": 1},
    "davis2017": {"random_gap": 12, "repeat": 5},
}
"""Upstream's per-set defaults: DATA_RANDOM_GAP_YTB / _DAVIS, DATA_DAVIS_REPEAT."""


def open_vos_set(name: str, data: Path, *, num_frames: int, **options: Any) -> VideoSet | StaticSet:
    """The training set ``name`` (one of VOS_DATASETS) found under ``data`` (DATA of paths.env,
    or the set's own folder), in sequences of ``num_frames`` frames (DATA_SEQ_LEN, upstream 5).

    Options and defaults: every set, ``crop_size`` (464, 464), ``max_obj_num`` 10, ``aug`` "v1"
    (AOT; "v2" for DeAOT), ``merge_prob`` (0.3; static 1.0); the video sets, ``scale`` (0.7, 1.3),
    ``short_edge`` 480, ``max_crop_steps`` 5, ``flip`` 0.5, ``reverse`` True, ``random_gap`` (3;
    davis2017 12), ``repeat`` (1; davis2017 5). Unknown names and options are a ConfigError.
    """
    if name not in VOS_DATASETS:
        raise ConfigError(
            f"unknown propagator training set {name!r}; known: {', '.join(VOS_DATASETS)}"
        )
    if num_frames < 2:
        raise ConfigError(
            f"num_frames must be at least 2 (reference and one frame), not {num_frames}"
        )
    data = Path(data)
    if name == "static":
        return StaticSet(
            name,
            static_sets.static_images(data),
            num_frames,
            _options(StaticOptions, name, options),
        )
    settings = _options(VideoOptions, name, {**VIDEO_DEFAULTS[name], **options})
    videos = layouts.youtubevos_videos(data) if name == "youtubevos" else layouts.davis_videos(data)
    return VideoSet(name, videos, num_frames, settings)


def _options(kind: type[Options], name: str, options: dict[str, Any]) -> Options:
    known = [f.name for f in dataclasses.fields(kind)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{name} has no option {', '.join(unknown)}; known: {', '.join(known)}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


__all__ = ["VOS_DATASETS", "VOSClip", "concat", "open_vos_set"]
