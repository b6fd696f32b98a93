"""Speed of J and F: rvos_eval.metrics against the official algorithm (reference.py, whole frame).

Single process, OpenCV single-threaded, CPU time (time.process_time, best of --repeat passes over
all frames, the implementations taking turns within each pass), milliseconds per frame for J + F at
480x854 and 720x1280. All must give identical numbers on every frame (asserted). ``--official`` adds
the official code itself (davis2017-evaluation's ``davis2017/metrics.py``, any local copy; not part
of this repository); ``--steps`` breaks our time down by step. Synthetic masks, two models:

* ``mix`` (the realistic case, MeViS / Ref-DAVIS-like): per video 1-3 objects with smooth wavy
  outlines, each 0.5-25 % of the frame (log-uniform), moving; the target is absent (both masks
  empty) in ~10 % of the frames; the prediction is the truth shifted by up to 4 px with a smoothly
  varying boundary offset (2 px std), missed in 5 % of the frames, with a spurious blob in 5 %.
* ``large`` (a harder case, DAVIS-like): objects of 5-30 % of the frame size per axis, never
  absent, same prediction model.

    python bench/eval/run.py [--videos 8] [--frames 12] [--repeat 3] [--seed 0]
                             [--official PATH/davis2017/metrics.py] [--steps]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference

from rvos_eval import metrics
from rvos_eval.disk import disk
from rvos_eval.metrics import frame_jf

SIZES = ((480, 854), (720, 1280))
Pair = tuple[np.ndarray, np.ndarray]
Measure = Callable[[np.ndarray, np.ndarray], object]
STEPS = (
    "read both masks once",
    "union box and counts",
    "merged crop",
    "boundary map",
    "boundary pixels",
    "integral image",
    "matching",
)


def blob(shape: tuple[int, int], centre: np.ndarray, radii: np.ndarray, phase: float) -> np.ndarray:
    """bool [H, W]: an ellipse with a wavy outline."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    dy, dx = (yy - centre[0]) / radii[0], (xx - centre[1]) / radii[1]
    angle = np.arctan2(dy, dx)
    wave = 1 + 0.15 * np.sin(2 * angle + phase) + 0.07 * np.sin(5 * angle + 2 * phase)
    return dy**2 + dx**2 <= wave**2


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W], unit standard deviation, correlated over ~10 px."""
    coarse = rng.standard_normal((shape[0] // 8 + 2, shape[1] // 8 + 2)).astype(np.float32)
    field = cv2.GaussianBlur(
        cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 3
    )
    return field / field.std()


def predict(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible model output for ``truth`` [H, W]: shifted, wobbly boundary, rare errors."""
    shifted = np.roll(truth, tuple(rng.integers(-4, 5, 2)), (0, 1)).view(np.uint8)
    if shifted.any():
        inside = cv2.distanceTransform(shifted, cv2.DIST_L2, 3)
        outside = cv2.distanceTransform(1 - shifted, cv2.DIST_L2, 3)
        pred = inside - outside + 2.0 * smooth_noise(truth.shape, rng) > 0
    else:
        pred = shifted.astype(bool)
    event = rng.random()
    if event < 0.05:
        pred[:] = False
    elif event < 0.10:
        size = 0.04 * np.array(truth.shape)
        pred |= blob(truth.shape, rng.uniform(0, 1, 2) * truth.shape, size, 0.0)
    return pred


def video(shape: tuple[int, int], frames: int, rng: np.random.Generator, model: str) -> list[Pair]:
    """(truth, prediction) bool [H, W] pairs of one video."""
    dims = np.array(shape, dtype=np.float64)
    objects = []
    for _ in range(rng.integers(1, 4)):
        if model == "mix":
            area = np.exp(rng.uniform(np.log(0.005), np.log(0.25))) * shape[0] * shape[1]
            radii = np.sqrt(area / np.pi) * rng.uniform(0.7, 1.4, 2)
        else:
            radii = rng.uniform(0.05, 0.3) * dims * rng.uniform(0.6, 1.4, 2)
        centre = rng.uniform(0.2, 0.8, 2) * dims
        objects.append((centre, rng.uniform(-0.006, 0.006, 2) * dims, radii, rng.uniform(0, 6)))
    absent = rng.random(frames) < (0.1 if model == "mix" else 0.0)
    pairs = []
    for t in range(frames):
        truth = np.zeros(shape, bool)
        for centre, speed, radii, phase in objects:
            if not absent[t]:
                truth |= blob(shape, centre + t * speed, radii, phase + 0.05 * t)
        pairs.append((truth, predict(truth, rng)))
    return pairs


def reference_jf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    return reference.jaccard(truth, pred), reference.boundary_f(truth, pred)


def official_jf(path: Path) -> Measure:
    """J and F by the official ``db_eval_iou`` / ``db_eval_boundary`` loaded from ``path``."""
    spec = importlib.util.spec_from_file_location("davis2017_metrics", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def measure(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
        with np.errstate(invalid="ignore"):  # it divides 0 by 0 before testing for an empty union
            return module.db_eval_iou(truth, pred), module.db_eval_boundary(truth, pred)

    return measure


def best_times(measures: dict[str, Measure], pairs: list[Pair], repeat: int) -> dict[str, float]:
    """Best CPU milliseconds per frame of each measure over ``repeat`` passes (taking turns)."""
    best = dict.fromkeys(measures, float("inf"))
    for _ in range(repeat):
        for name, fn in measures.items():
            start = time.process_time()
            for truth, pred in pairs:
                fn(truth, pred)
            best[name] = min(best[name], time.process_time() - start)
    return {name: 1e3 * seconds / len(pairs) for name, seconds in best.items()}


def through_step(last: int) -> Measure:
    """rvos_eval.metrics.binary_counts on bool masks, stopped after STEPS[last] (0: only read)."""

    def run(truth: np.ndarray, pred: np.ndarray) -> object:
        g, p = truth.view(np.uint8), pred.view(np.uint8)
        if last == 0:
            return cv2.countNonZero(g) + cv2.countNonZero(p)
        footprint = disk(metrics.boundary_radius(g.shape))
        box = metrics.union_box(g, p)[0]
        if box is None or last == 1:
            return box
        merged = metrics.merge(g, p, box, footprint.reach)
        cv2.countNonZero(merged)
        if last == 2:
            return merged
        bmap = metrics.boundary_map(merged, box, footprint.reach)
        if last == 3:
            return bmap
        pixels, values = metrics.boundary_pixels(bmap)
        layout = bmap[: merged.size].reshape(merged.shape)
        if (
            last == 4
            or not (values & metrics.GT_BIT).any()
            or not (values >= metrics.PRED_BIT).any()
        ):
            return pixels
        if last == 5:
            return cv2.integral(layout[:, :-1])
        return metrics.missed(layout, pixels, values, footprint)

    return run


def print_steps(pairs: list[Pair], repeat: int) -> None:
    """Our time per frame through each step, and what each step adds."""
    times = best_times({step: through_step(i) for i, step in enumerate(STEPS)}, pairs, repeat)
    before = 0.0
    for step, total in times.items():
        print(f"    {step:22} {total:7.3f} ms  (+{total - before:.3f})")
        before = total


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows, and the CPU count."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({os.cpu_count()} CPUs)"


def fixed_cost(repeat: int) -> float:
    """Our milliseconds on a frame with almost nothing to do (40x60, two 4x4 squares 1 px apart):
    the cost of the library calls themselves, whatever the frame size."""
    truth = np.zeros((40, 60), bool)
    truth[10:14, 20:24] = True
    pair = (truth, np.roll(truth, 1, axis=1))
    return best_times({"ours": frame_jf}, [pair] * 100, repeat)["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--official", type=Path, help="davis2017-evaluation davis2017/metrics.py")
    parser.add_argument("--steps", action="store_true", help="our time per step as well")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/charts.py)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    measures: dict[str, Measure] = {"reference": reference_jf}
    if args.official:
        measures["official"] = official_jf(args.official)
    measures["ours"] = frame_jf
    print(f"CPU: {cpu_name()}, numpy {np.__version__}, OpenCV {cv2.__version__}")
    columns = " ".join(f"{name + ' ms':>12}" for name in measures)
    gains = " ".join(f"{'/' + name:>11}" for name in measures if name != "ours")
    print(f"{'masks':6} {'size':>9} {'frames':>6} {columns} {gains}  identical")
    rows = []
    for model in ("mix", "large"):
        for shape in SIZES:
            rng = np.random.default_rng([args.seed, shape[0], len(model)])
            pairs = [p for _ in range(args.videos) for p in video(shape, args.frames, rng, model)]
            same = all(len({fn(t, p) for fn in measures.values()}) == 1 for t, p in pairs)
            ms = best_times(measures, pairs, args.repeat)
            size = f"{shape[0]}x{shape[1]}"
            columns = " ".join(f"{v:12.3f}" for v in ms.values())
            gains = " ".join(f"{v / ms['ours']:10.1f}x" for k, v in ms.items() if k != "ours")
            print(f"{model:6} {size:>9} {len(pairs):>6} {columns} {gains}  {same}")
            rows.append({"masks": model, "size": size, "frames": len(pairs), "ms_per_frame": ms})
            assert same, "J or F differ from the official algorithm"
            if args.steps:
                print_steps(pairs, args.repeat)
    if args.steps:
        print(f"fixed cost per frame (40x60, two 4x4 squares): {fixed_cost(args.repeat):.3f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "eval", "cpu": cpu_name(), "rows": rows}))


if __name__ == "__main__":
    main()
