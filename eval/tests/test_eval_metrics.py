"""J, F and the statistics on cases small enough to work out by hand, and against the definition."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from skimage.morphology import disk as skimage_disk

from rvos_core.testing import parity_dir
from rvos_eval.disk import disk, footprint, row_rectangles
from rvos_eval.metrics import (
    GT_FIELD,
    FrameCounts,
    boundary_radius,
    frame_counts,
    frame_jf,
    video_jf,
)
from rvos_eval.stats import decay_bins, global_table, statistics


def frame(shape: tuple[int, int], *pixels: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for y, x in pixels:
        mask[y, x] = True
    return mask


@pytest.mark.parametrize(
    ("shape", "radius"),
    [((360, 640), 6), ((480, 854), 8), ((540, 960), 9), ((720, 1280), 12), ((1080, 1920), 18)],
)
def test_radius_of_the_usual_frame_sizes(shape: tuple[int, int], radius: int) -> None:
    assert boundary_radius(shape) == radius


def test_radius_in_pixels_and_exact_products() -> None:
    assert boundary_radius((64, 96), 3) == 3.0
    assert boundary_radius((600, 800)) == 8.0  # 0.008 * 1000 is exactly 8
    assert boundary_radius((3, 1000)) == 9.0  # 0.008 * 1000.0045 is just above 8
    with pytest.raises(ValueError, match="positive"):
        boundary_radius((10, 10), 0.0)


@pytest.mark.parametrize("radius", [1.0, 2.0, 2.5, 3.0, 4.0, 8.0, 12.0, 18.0, 25.0])
def test_footprint_is_skimage_disk_and_rectangles_cover_it(radius: float) -> None:
    kernel = footprint(radius)
    assert np.array_equal(kernel, skimage_disk(radius).astype(bool))
    covered = np.zeros_like(kernel)
    ay, ax = kernel.shape[0] // 2, kernel.shape[1] // 2
    for dy0, dy1, dx0, dx1 in row_rectangles(kernel):
        covered[ay + dy0 : ay + dy1 + 1, ax + dx0 : ax + dx1 + 1] = True
    assert np.array_equal(covered, kernel)


@pytest.mark.parametrize("radius", [1.0, 1.5, 2.5, 4.0, 8.0, 12.0, 18.0, 25.0, 70.0])
def test_pieces_cover_the_footprint_and_stay_small(radius: float) -> None:
    kernel, pieces = footprint(radius), disk(radius).pieces
    ay, ax = kernel.shape[0] // 2, kernel.shape[1] // 2
    covered = np.zeros_like(kernel)
    for dy0, dy1, dx0, dx1 in pieces:
        window = (slice(ay + dy0, ay + dy1 + 1), slice(ax + dx0, ax + dx1 + 1))
        assert kernel[window].all() and kernel[window].size <= GT_FIELD
        covered[window] = True
    assert np.array_equal(covered, kernel)
    dy0, dy1, dx0, dx1 = pieces[0]
    assert dy0 <= 0 <= dy1 and dx0 <= 0 <= dx1


def test_disk_sizes_from_the_spec() -> None:
    assert footprint(8.0).sum() == 197 and footprint(8.0).shape == (17, 17)
    assert footprint(12.0).sum() == 441 and footprint(12.0).shape == (25, 25)
    assert disk(8.0).reach == 8 and len(row_rectangles(footprint(8.0))) == 6


def test_empty_and_full_frames() -> None:
    empty, full = np.zeros((6, 7), bool), np.ones((6, 7), bool)
    assert frame_jf(empty, empty) == (1.0, 1.0)
    assert frame_jf(frame((6, 7), (2, 3)), empty) == (0.0, 0.0)
    assert frame_jf(full, full) == (1.0, 1.0)
    # a full frame has no boundary: J = 0 but F = 1 against an empty ground truth
    assert frame_jf(empty, full) == (0.0, 1.0)


def test_two_pixels_two_apart_by_hand() -> None:
    """5x5 frame (radius 1): gt pixel (2, 2), prediction pixel (2, 4) on the last column.

    Boundary maps (non-constant 2x2 windows): gt {(1,1),(1,2),(2,1),(2,2)}, pred {(1,3),(1,4),
    (2,3),(2,4)} (last column: vertical neighbour only). Within distance 1: pred (1,3),(2,3) and gt
    (1,2),(2,2), so P = R = 2/4, F = 0.5; no overlap, J = 0.
    """
    counts = frame_counts(frame((5, 5), (2, 2)), frame((5, 5), (2, 4)))
    assert counts == FrameCounts(0, 2, 4, 4, 2, 2)
    assert (counts.j, counts.f) == (0.0, 0.5)


def test_shifted_square_by_hand() -> None:
    """2x2 squares at (3..4, 3..4) and (3..4, 4..5) in 10x10: I = 2, U = 6."""
    gt = np.zeros((10, 10), bool)
    gt[3:5, 3:5] = True
    pred = np.roll(gt, 1, axis=1)
    assert frame_jf(gt, pred)[0] == pytest.approx(1 / 3, abs=1e-15)
    assert frame_jf(gt, gt) == (1.0, 1.0)


def test_void_band_from_the_official_pytest() -> None:
    """GT square, void band next to it, prediction covering both: J = 1 and F = 1."""
    gt, void = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    gt[5:15, 5:10] = True
    void[5:15, 10:13] = True
    pred = gt | void
    assert frame_jf(gt, pred, void) == (1.0, 1.0)
    assert frame_jf(gt, pred)[0] == pytest.approx(50 / 80, abs=1e-15)


def test_inputs_any_non_zero_is_set() -> None:
    gt = np.zeros((8, 9), np.uint8)
    gt[2:5, 3:7] = 255
    assert frame_jf(gt, (gt > 0).astype(np.float32) * 0.3) == (1.0, 1.0)
    with pytest.raises(ValueError, match="shape"):
        frame_jf(gt, gt[:, :-1])


def _official() -> ModuleType:
    """bench/eval/reference.py: the official algorithm, implemented apart from rvos_eval."""
    path = Path(__file__).resolve().parents[2] / "bench" / "eval" / "reference.py"
    spec = importlib.util.spec_from_file_location("eval_bench_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parity
def test_the_official_algorithm_reproduces_the_parity_frames() -> None:
    """The oracle itself gives the official numbers on every single-frame fixture, bit for bit."""
    official = _official()
    folder = parity_dir("eval") / "frames"
    cases = json.loads((folder / "index.json").read_text())["cases"]
    assert cases
    wrong = []
    for case in cases:
        data = np.load(folder / case["file"])
        void = data["void"] if "void" in data.files else None
        bound_th = float(data["bound_th"])
        got = (
            official.jaccard(data["gt"], data["pred"], void),
            official.boundary_f(data["gt"], data["pred"], void, bound_th),
        )
        if got != (case["J"], case["F"]):
            wrong.append((case["name"], got))
    assert not wrong


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_the_official_algorithm_on_random_masks(seed: int) -> None:
    official = _official()
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 90, 2))
    blobs = cv2.GaussianBlur(rng.random((height, width)), (0, 0), float(rng.uniform(0.5, 4)))
    gt = blobs > np.quantile(blobs, rng.uniform(0.2, 0.95))
    pred = np.roll(gt, tuple(rng.integers(-6, 7, 2)), (0, 1)) ^ (rng.random(gt.shape) < 0.02)
    void = rng.random(gt.shape) < (0.05 if seed % 3 == 0 else 0.0)
    bound_th = [0.008, 0.02, 2.0, 3.0, 2.5, 7.0][seed % 6]
    expected = (official.jaccard(gt, pred, void), official.boundary_f(gt, pred, void, bound_th))
    assert frame_jf(gt, pred, void, bound_th) == expected


def test_objects_on_every_frame_edge_against_the_official_algorithm() -> None:
    """Crops that touch each side and corner of the frame (the comparisons with the outside are
    removed there), with both masks, one of them or none reaching the edge."""
    official = _official()
    height, width = 23, 31
    yy, xx = np.mgrid[:height, :width]
    centres = [(0, 0), (0, 15), (0, 30), (11, 0), (11, 30), (22, 0), (22, 15), (22, 30)]
    for cy, cx in centres:
        gt = (yy - cy) ** 2 / 30 + (xx - cx) ** 2 / 50 <= 1
        for shift in ((0, 0), (2, -1), (-3, 2)):
            pred = np.roll(gt, shift, (0, 1)) & ((yy - cy) ** 2 + (xx - cx) ** 2 <= 60)
            for bound_th in (0.008, 2.0, 4.0):
                expected = (
                    official.jaccard(gt, pred),
                    official.boundary_f(gt, pred, bound_th=bound_th),
                )
                assert frame_jf(gt, pred, bound_th=bound_th) == expected, (cy, cx, shift)


def test_video_jf_is_per_frame() -> None:
    gt = np.zeros((3, 5, 5), bool)
    pred = gt.copy()
    gt[1, 2, 2] = pred[1, 2, 4] = True
    gt[2, 1:3, 1:3] = True
    j, f = video_jf(gt, pred)
    assert j.tolist() == [1.0, 0.0, 0.0] and f.tolist() == [1.0, 0.5, 0.0]


def test_statistics_by_hand() -> None:
    """5 frames: bins [0:2], [1:3], [2:4], [3:5]; decay = mean(1, 1) - mean(0, 0)."""
    stats = statistics(np.array([1.0, 1.0, 0.0, 0.0, 0.0]))
    assert (stats.mean, stats.recall, stats.decay) == (0.4, 0.4, 1.0)
    one = statistics(np.array([0.7]))
    assert (one.mean, one.recall, one.decay) == (0.7, 1.0, 0.0)
    assert all(math.isnan(v) for v in vars(statistics(np.array([]))).values())


def test_decay_bins_wrap_like_uint8() -> None:
    # 256 frames: round(1, 64.75, 128.5 + 1e-10, 192.25, 256) - 1 = 0, 64, 128, 191, 255;
    # the last bin ends at (255 + 1) % 256 = 0
    assert decay_bins(256) == [(0, 65), (64, 129), (128, 192), (191, 0)]
    assert math.isnan(statistics(np.linspace(0, 1, 256)).decay)
    # 300 frames: boundaries 0, 75, 150, 224, 299 -> 299 wraps to 43
    assert decay_bins(300) == [(0, 76), (75, 151), (150, 225), (224, 44)]


def test_global_table_means_objects_and_propagates_nan() -> None:
    a, b = statistics(np.array([1.0, 0.0])), statistics(np.array([0.5, 0.5]))
    table = global_table([a, b], [b, b])
    assert table["J-Mean"] == 0.5 and table["F-Mean"] == 0.5 and table["J&F-Mean"] == 0.5
    assert table["J-Recall"] == 0.25
    nan = statistics(np.linspace(0, 1, 256))
    assert math.isnan(global_table([a, nan], [b, b])["J-Decay"])
    assert all(math.isnan(v) for v in global_table([], []).values())
