"""Speed of J and F: rvos_eval.metrics against the official algorithm written out (reference.py).

Single process, OpenCV single-threaded, CPU time (time.process_time, best of --repeat passes over
all frames), milliseconds per frame for J + F at 480x854 and 720x1280. Both must give identical
numbers on every frame (asserted). Synthetic masks, two models:

* ``mix`` (the realistic case, MeViS / Ref-DAVIS-like): per video 1-3 objects with smooth wavy
  outlines, each 0.5-25 % of the frame (log-uniform), moving; the target is absent (both masks
  empty) in ~10 % of the frames; the prediction is the truth shifted by up to 4 px with a smoothly
  varying boundary offset (2 px std), missed in 5 % of the frames, with a spurious blob in 5 %.
* ``large`` (a harder case, DAVIS-like): objects of 5-30 % of the frame size per axis, never
  absent, same prediction model.

    python bench/eval/run.py [--videos 8] [--frames 12] [--repeat 3] [--seed 0]
"""

from __future__ import annotations

import argparse
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

from rvos_eval.metrics import frame_jf

SIZES = ((480, 854), (720, 1280))
Pair = tuple[np.ndarray, np.ndarray]


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


def official(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    return reference.jaccard(truth, pred), reference.boundary_f(truth, pred)


def time_per_frame(
    fn: Callable[[np.ndarray, np.ndarray], object], pairs: list[Pair], repeat: int
) -> float:
    """Best CPU milliseconds per frame over ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for truth, pred in pairs:
            fn(truth, pred)
        best = min(best, time.process_time() - start)
    return 1e3 * best / len(pairs)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"CPU: {cpu_name()}, numpy {np.__version__}, OpenCV {cv2.__version__}")
    print(
        f"{'masks':6} {'size':>9} {'frames':>6} {'official ms':>11} {'ours ms':>8} {'speed-up':>8}  identical"
    )
    for model in ("mix", "large"):
        for shape in SIZES:
            rng = np.random.default_rng([args.seed, shape[0], len(model)])
            pairs = [p for _ in range(args.videos) for p in video(shape, args.frames, rng, model)]
            same = all(official(t, p) == frame_jf(t, p) for t, p in pairs)
            slow = time_per_frame(official, pairs, args.repeat)
            fast = time_per_frame(frame_jf, pairs, args.repeat)
            size = f"{shape[0]}x{shape[1]}"
            print(
                f"{model:6} {size:>9} {len(pairs):>6} {slow:11.3f} {fast:8.3f} {slow / fast:7.1f}x  {same}"
            )
            assert same, "J or F differ from the official algorithm"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
