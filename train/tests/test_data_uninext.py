"""The "uninext" recipe: (key, reference) frame pairs within 10 frames that both show the target,
RefCOCO images as (image, image), detectron2's shortest-edge sizes, one crop size and one flip per
clip, all randomness from the generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rvos_core.errors import ConfigError
from rvos_core.synthetic import VideoSpec, write_training_data
from rvos_train.data import open_training_set
from rvos_train.data.uninext import PairDraw, UninextAugment, shortest_edge_size

SPECS = [VideoSpec("v0", 3, 14, (48, 64)), VideoSpec("v1", 2, 5, (40, 56))]
SMALL = {"scales": (32, 40), "max_size": 64, "image_scales": (48,), "image_max_size": 80}
"""Upstream's recipe at small sizes (no crop unless a test asks): a clip takes milliseconds."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_training_data(tmp_path_factory.mktemp("data"), SPECS)


def open_pairs(data: Path, name: str, **options):
    return open_training_set(
        name, data, recipe="uninext", num_frames=2, **{**SMALL, "crop_p": 0.0, **options}
    )


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_pair_draw_stays_within_the_range() -> None:
    draw = PairDraw(length=30, frame_range=10)
    pairs = np.stack([draw(rng(s)) for s in range(300)])
    assert (pairs[:, 0] < pairs[:, 1]).all() and (pairs[:, 1] - pairs[:, 0] <= 10).all()
    assert pairs.min() == 0 and pairs.max() == 29
    assert set((pairs[:, 1] - pairs[:, 0]).tolist()) == set(range(1, 11))
    assert PairDraw(length=1)(rng(0)).tolist() == [0, 0]


def test_a_target_seen_in_frames_too_far_apart_cannot_pair() -> None:
    draw = PairDraw(length=30, frame_range=10)
    assert not draw.can_pair(frozenset({0, 11, 22}))
    assert draw.can_pair(frozenset({0, 10}))
    assert PairDraw(length=1).can_pair(frozenset({0}))


@pytest.mark.parametrize("name", ["refytvos", "mevis"])
def test_video_clips_are_pairs_that_show_the_target(data: Path, name: str) -> None:
    pairs = open_pairs(data, name)
    for index in range(len(pairs)):
        clip = pairs.clip(index, rng(index))
        first, second = clip.frame_ids.tolist()
        assert first < second <= first + 10
        assert clip.frames.shape[:2] == (2, 3) and clip.valid.tolist() == [1, 1]
        assert min(clip.size) in SMALL["scales"]
        again = pairs.clip(index, rng(index))
        assert torch.equal(clip.frames, again.frames) and torch.equal(clip.masks, again.masks)


def test_images_become_two_views_at_the_image_sizes(data: Path) -> None:
    pairs = open_pairs(data, "refcoco", crop_p=1.0, crop_range=(24, 30))
    clips = [pairs.clip(i, rng(i)) for i in range(len(pairs))]
    assert all(c.frame_ids.tolist() == [0, 0] for c in clips)
    assert all(min(c.size) == 48 for c in clips)
    # the crop size is the clip's, its place each frame's: the copies differ somewhere
    assert any(not torch.equal(c.frames[0], c.frames[1]) for c in clips)


def test_flip_mirrors_both_frames_and_swaps_sides(data: Path) -> None:
    plain = open_pairs(data, "refytvos", flip_p=0.0)
    flipped = open_pairs(data, "refytvos", flip_p=1.0)
    sided = [i for i in range(len(plain)) if "left" in plain.clip(i, rng(0)).caption]
    assert sided, "the generated expressions mention sides"
    a, b = plain.clip(sided[0], rng(0)), flipped.clip(sided[0], rng(0))
    assert b.caption == a.caption.replace("left", "right")
    assert torch.equal(b.masks, a.masks.flip(-1)) and torch.equal(b.frames, a.frames.flip(-1))


def test_shortest_edge_sizes_are_detectron2s() -> None:
    assert shortest_edge_size(720, 1280, 320, 768) == (320, 569)
    assert shortest_edge_size(1280, 720, 640, 768) == (768, 432)  # long side bound
    assert shortest_edge_size(480, 640, 800, 1333) == (800, 1067)


def test_crop_size_is_drawn_once_per_clip() -> None:
    frames = np.zeros((2, 500, 700, 3), np.uint8)
    masks = np.ones((2, 500, 700), bool)
    augment = UninextAugment(scales=(400,), max_size=10000, crop_p=1.0, flip_p=0.0)
    for seed in range(5):
        out, out_masks, _ = augment(frames, masks, "a cat", rng(seed))
        assert out.shape[0] == 2 and out_masks.shape == out.shape[:3] and min(out.shape[1:3]) == 400


def test_recipe_makes_two_frame_clips_only(data: Path) -> None:
    with pytest.raises(ConfigError, match="num_frames must be 2"):
        open_training_set("refytvos", data, recipe="uninext", num_frames=3)
    with pytest.raises(ConfigError, match="no option"):
        open_training_set("refytvos", data, recipe="uninext", num_frames=2, short_size=3)
