"""Benchmark of key-frame propagation: frames per second and peak memory of the full
Swin-L AOT and DeAOT (random weights: same time and memory as the real ones) on a synthetic 720p
clip, through the competition procedure (3 scales x flip = 6 views, rvos_vos.procedure).

Each propagator runs in a fresh process: build, one reference (key) frame, then N propagated frames
(predict + commit, frame decoding and view resizing included, as the command does). Reported:
build time, reference time (the first, cold), per-frame time (median), propagated frames per
second, peak memory (process peak RSS on CPU; peak CUDA allocation on GPU), long-term memory frames
at the end; every time also as process CPU time (all threads: with --threads 1 the steadiest
figure on a shared machine, where waiting threads spin).
Reference ("floor"): the Swin-L encoder alone on the frame's views; frame / floor is the share of
everything else (LSTT / gated propagation, decoder, upsampling, averaging). With
``--expressions E`` every frame is encoded once and propagated for E expressions (the command's
``--expression-group``); the time per expression-frame against E = 1 is what that saves.

    python bench/propagate/run.py [--propagators aot,deaot] [--frames 3] [--size 720x1280]
        [--expressions 1] [--device cpu] [--precision fp32] [--threads 2] [--gap 5]
        [--max-long-term N]

On CPU a few frames suffice (a 720p frame costs minutes of CPU time); on GPU use
``--device cuda --precision amp --frames 40`` to see the memory growth of long videos.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing import get_context
from typing import Any

import cv2
import numpy as np
import torch

from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.key_inputs import PRECISION_ALIASES
from rvos_vos.procedure import MultiViewTracker
from rvos_vos.propagators import load_propagator
from rvos_vos.views import ViewConfig, make_views


def synthetic_clip(count: int, height: int, width: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (float32 RGB 0..255, smooth texture + a moving ellipse) and the key mask [H, W]."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.uniform(40, 200, (height // 32, width // 32, 3)).astype(np.float32),
                      (width, height), interpolation=cv2.INTER_CUBIC)  # fmt: skip
    yy, xx = np.mgrid[:height, :width]
    frames, masks = [], []
    for t in range(count):
        cy, cx = height * (0.4 + 0.01 * t), width * (0.4 + 0.015 * t)
        mask = ((yy - cy) / (0.2 * height)) ** 2 + ((xx - cx) / (0.12 * width)) ** 2 <= 1
        frame = base.copy()
        frame[mask] = (230, 60, 40)
        frames.append(frame)
        masks.append(mask)
    return frames, masks[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One propagator, in the calling (fresh) process."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = check_precision(PRECISION_ALIASES.get(args.precision, args.precision), device)
    propagator = load_propagator(name)
    config = propagator.config("full")
    torch.manual_seed(0)
    start = time.perf_counter()
    net = propagator.build(config).to(device).eval()
    build_s = time.perf_counter() - start
    height, width = args.size
    frames, key = synthetic_clip(args.frames + 1, height, width)
    views = ViewConfig()
    trackers = [
        MultiViewTracker(
            net=net,
            policy=propagator.policy(config, args.gap, args.max_long_term),
            live_ids=propagator.live_ids(config, objects=1),
            views=views,
            size=(height, width),
        )
        for _ in range(args.expressions)
    ]

    def frame_views(t: int) -> list[torch.Tensor]:
        return [v.to(device) for v in make_views(frames[t], views)]

    def timed(work: Callable[[], object]) -> tuple[float, float]:
        """(wall, process CPU) seconds of ``work``."""
        _sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        _sync(device)
        return time.perf_counter() - start, time.process_time() - start_cpu

    def reference(label: torch.Tensor) -> None:
        encoded = trackers[0].encode(frame_views(0))
        for tracker in trackers:
            tracker.add_reference(encoded, label)

    def step(t: int) -> None:
        """Frame t for every expression, encoded once (as rvos_vos.procedure.lockstep does)."""
        encoded = trackers[0].encode(frame_views(t))
        for tracker in trackers:
            tracker.commit(tracker.predict(encoded).argmax(dim=0))

    label = torch.from_numpy(key.astype(np.int64)).to(device)
    with inference_context(device, precision):
        first = timed(lambda: reference(label))
        steps = [timed(lambda t=t: step(t)) for t in range(1, args.frames + 1)]
        floor = timed(lambda: [net.encode(image) for image in frame_views(0)])  # warm, like steps
    per_frame = statistics.median(s[0] for s in steps)
    return {
        "propagator": name,
        "device": str(device),
        "precision": args.precision,
        "threads": args.threads,
        "size": f"{height}x{width}",
        "views": [list(s) for s in views.sizes(height, width)],
        "frames": args.frames,
        "expressions": args.expressions,
        "build_s": round(build_s, 2),
        "encoder_floor_s": round(floor[0], 2),
        "encoder_floor_cpu_s": round(floor[1], 2),
        "reference_s": round(first[0], 2),
        "reference_cpu_s": round(first[1], 2),
        "frame_s_median": round(per_frame, 2),
        "expression_frame_s": round(per_frame / args.expressions, 2),
        "frame_cpu_s_median": round(statistics.median(s[1] for s in steps), 2),
        "frame_s": [round(s[0], 2) for s in steps],
        "frame_cpu_s": [round(s[1], 2) for s in steps],
        "fps": round(len(steps) / sum(s[0] for s in steps), 4),
        "expression_fps": round(args.expressions * len(steps) / sum(s[0] for s in steps), 4),
        "peak_gb": round(_peak_gb(device), 2),
        "long_term_frames": trackers[0].sessions[0].long_term_frames,
    }


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--propagators", default="aot,deaot")
    parser.add_argument(
        "--frames", type=int, default=3, help="propagated frames after the key frame"
    )
    parser.add_argument(
        "--expressions",
        type=int,
        default=1,
        help="expressions propagated together (each frame encoded once for all, as the command's "
        "--expression-group does)",
    )
    parser.add_argument("--size", type=_size, default=(720, 1280), help="HxW (default 720x1280)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp32, amp (= fp16), fp16, bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gap", type=int, help="long-term memory gap (default: the model's, 5)")
    parser.add_argument("--max-long-term", type=int)
    args = parser.parse_args(argv)
    context = get_context("spawn")
    for name in args.propagators.split(","):
        with context.Pool(1) as pool:  # a fresh process: its own peak memory
            result = pool.apply(measure, (name, args))
        print(
            f"{name:6s} {result['device']} {result['precision']} {result['size']}: "
            f"build {result['build_s']} s; wall (CPU) seconds: encoder floor "
            f"{result['encoder_floor_s']} ({result['encoder_floor_cpu_s']}), reference "
            f"{result['reference_s']} ({result['reference_cpu_s']}), frame median "
            f"{result['frame_s_median']} ({result['frame_cpu_s_median']}) for "
            f"{result['expressions']} expression(s), {result['expression_frame_s']} per expression; "
            f"{result['expression_fps']} expression-frames/s, "
            f"peak {result['peak_gb']} GB, long-term memory {result['long_term_frames']} frames"
        )
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
