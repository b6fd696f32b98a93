"""The pieces of the recipes: frame draws, windows, resize rule, crop, flip, photometric
distortion, pseudo-video warps, and the probabilities upstream uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvos_train.data import ReferFormerAugment, SeqAugmenter, SocAugment, swap_left_right
from rvos_train.data.pseudo_video import motion_kernel, pseudo_clip
from rvos_train.data.sampling import LocalGlobal, soc_windows
from rvos_train.data.transforms import detr_size, photometric_distort, resize


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def blob_clip(frames: int = 2, size: tuple[int, int] = (12, 16)) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, H, W, 3] with a bright square where bool [T, H, W] is set, left of centre."""
    height, width = size
    masks = np.zeros((frames, *size), bool)
    masks[:, height // 4 : height * 2 // 3, width // 8 : width * 3 // 8] = True
    pixels = np.where(masks[..., None], 220, 30).astype(np.uint8)
    return np.repeat(pixels, 3, axis=3), masks


@pytest.mark.parametrize(
    ("caption", "swapped"),
    [
        ("the man on the left", "the man on the right"),
        ("left of the right car", "right of the left car"),
        ("the leftmost bright upright lamp", "the rightmost bright upright lamp"),
        ("a cat", "a cat"),
    ],
)
def test_swap_left_right(caption: str, swapped: str) -> None:
    assert swap_left_right(caption) == swapped


@pytest.mark.parametrize(
    ("size", "short", "max_size", "expected"),
    [
        ((720, 1280), 360, 640, (360, 640)),
        ((480, 910), 512, 640, (338, 640)),
        ((1280, 720), 288, 640, (512, 288)),
        ((360, 640), 360, 640, (360, 640)),
        ((720, 1280), 500, None, (500, 888)),
    ],
)
def test_detr_size(size, short, max_size, expected) -> None:
    assert detr_size(*size, short, max_size) == expected


@pytest.mark.parametrize(("source", "target"), [((12, 16), (30, 41)), ((37, 50), (9, 13))])
def test_mask_resize_is_pytorch_nearest(source, target) -> None:
    masks = rng().random((2, *source)) < 0.5
    frames = np.zeros((2, *source, 3), np.uint8)
    _, resized = resize(frames, masks, target)
    expected = torch.nn.functional.interpolate(torch.from_numpy(masks[:, None]).float(), target)
    np.testing.assert_array_equal(resized, expected[:, 0].numpy() > 0.5)


@pytest.mark.parametrize(
    ("length", "num_frames"), [(30, 5), (30, 1), (30, 2), (30, 3), (6, 5), (2, 8)]
)
def test_referformer_frame_draw(length: int, num_frames: int) -> None:
    generator = rng()
    for anchor in range(0, length, max(num_frames, 1)):
        draw = LocalGlobal(anchor, length, num_frames)
        for _ in range(20):
            picks = draw(generator)
            assert len(picks) == num_frames and (np.diff(picks) >= 0).all()
            assert set(picks.tolist()) <= set(draw.reachable())
            assert anchor in picks


def test_referformer_local_frames_are_within_max_skip() -> None:
    draws = [LocalGlobal(10, 30, 3, max_skip=2)(rng(s)) for s in range(200)]
    offsets = {int(p) - 10 for picks in draws for p in picks}
    assert offsets == {-2, -1, 0, 1, 2}


@pytest.mark.parametrize(
    ("length", "size", "windows"),
    [
        (10, 4, [(0, 1, 2, 3), (4, 5, 6, 7), (6, 7, 8, 9)]),
        (8, 4, [(0, 1, 2, 3), (4, 5, 6, 7)]),
        (3, 4, [(0, 1, 2, 2)]),
    ],
)
def test_soc_windows(length: int, size: int, windows) -> None:
    assert soc_windows(length, size) == windows


def flip_rate(augment, draws: int = 4000) -> float:
    frames, masks = blob_clip()
    generator = rng()
    flipped = [
        augment(frames, masks, "on the left", generator)[2] == "on the right" for _ in range(draws)
    ]
    return float(np.mean(flipped))


def test_flip_probabilities() -> None:
    # SOC flips when torch.randn(1) > 0.5: P(Z > 0.5) = 0.3085
    assert flip_rate(SocAugment(short_size=12, max_size=100)) == pytest.approx(0.3085, abs=0.03)
    referformer = ReferFormerAugment(scales=(12,), photometric=False, resize_only_p=1.0)
    assert flip_rate(referformer) == pytest.approx(0.5, abs=0.03)


def test_referformer_sizes_and_crop_branch() -> None:
    frames, masks = blob_clip(size=(24, 40))
    augment = ReferFormerAugment(
        scales=(10, 12), max_size=18, crop_scales=(30,), crop_range=(20, 26), photometric=False
    )
    generator = rng()
    shapes = {augment(frames, masks, "", generator)[1].shape[1:] for _ in range(400)}
    # resize only: (10, 16) or (12, 18 bound); crop branch: other aspect ratios
    assert {(10, 16), (11, 18)} <= shapes and len(shapes) > 4
    assert all(min(s) in (10, 12) or max(s) <= 18 for s in shapes)


def test_photometric_distort_is_per_draw_and_in_range() -> None:
    frame = rng().integers(0, 256, (8, 8, 3), dtype=np.uint8)
    outputs = [photometric_distort(frame, rng(s)) for s in range(20)]
    assert all(o.dtype == np.uint8 and o.shape == frame.shape for o in outputs)
    assert np.array_equal(photometric_distort(frame, rng(3)), outputs[3])
    assert len({o.tobytes() for o in outputs}) > 10


def test_pseudo_frames_move_image_and_mask_together() -> None:
    frames, masks = blob_clip(frames=1, size=(48, 64))
    still = SeqAugmenter(brightness=0, blur_p=0)
    for seed in range(10):
        frame, moved = still(frames[0], masks[0], rng(seed))
        bright = frame[..., 0] > 125
        assert (bright & moved).sum() / max((bright | moved).sum(), 1) > 0.8


def test_pseudo_clip_holds_the_image() -> None:
    frames, masks = blob_clip(frames=1, size=(48, 64))
    clip, clip_masks = pseudo_clip(frames[0], masks[0], 5, SeqAugmenter(), rng(2))
    assert clip.shape == (5, 48, 64, 3) and clip_masks.shape == (5, 48, 64)
    originals = [t for t in range(5) if np.array_equal(clip[t], frames[0])]
    assert len(originals) == 1 and np.array_equal(clip_masks[originals[0]], masks[0])


def test_motion_kernel() -> None:
    kernel = motion_kernel(9, 30.0, 0.4)
    assert kernel.shape == (9, 9) and kernel.sum() == pytest.approx(1.0)
    assert motion_kernel(11, 0.0, 0.0)[:, 5] == pytest.approx(np.full(11, 1 / 11))
