"""Benchmark of the library trackers as propagators (SAM 2.1, SAM 3 tracker, EdgeTAM, random
weights) against AOT on the same synthetic clip: seconds per propagated frame and peak memory.

Each (propagator, variant) runs in a fresh process: build, the key frame (the session takes the
key mask), then N frames forward through ``rvos_vos.tracking`` as the command runs them (frame
resizing included, one expression, no flip). Variants: ``tiny`` (the tests' model), ``small``
(256-pixel input), ``full`` (the library's default size: SAM 2.1 Hiera-T-like, the real SAM 3
tracker, EdgeTAM with a Hiera encoder). AOT is the full Swin-L AOT through the competition's six
views (``bench/propagate/run.py``'s measurement, same clip). Times are wall seconds, process CPU
seconds in brackets; with ``--threads 1`` the CPU figure is the steadiest on a shared machine.

    python bench/propagate/trackers.py [--propagators sam2,sam3_tracker,edgetam]
        [--variants tiny,small] [--aot] [--frames 4] [--size 240x432] [--device cpu]
        [--precision fp32] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from multiprocessing import get_context
from typing import Any

import torch
from run import _peak_gb, _size, _sync, measure, synthetic_clip

from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.key_inputs import PRECISION_ALIASES
from rvos_vos.propagate_trackers import tracker_family
from rvos_vos.tracking import KeyGroup, VideoTracker, track


def measure_tracker(name: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """One tracker variant, in the calling (fresh) process."""
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = check_precision(PRECISION_ALIASES.get(args.precision, args.precision), device)
    family = tracker_family(name)
    assert family is not None, f"{name} is not a library tracker"
    torch.manual_seed(0)
    start = time.perf_counter()
    model = family.random_model(variant).to(device)
    build_s = time.perf_counter() - start
    height, width = args.size
    frames, key = synthetic_clip(args.frames + 1, height, width)
    tracker = VideoTracker(
        model, family, (height, width), flip=False, device=device, state_device=device
    )
    group = KeyGroup(0, torch.from_numpy(key)[None])
    times: list[tuple[float, float]] = []
    clock = [time.perf_counter(), time.process_time()]

    def frame(t: int) -> list[torch.Tensor]:
        return tracker.pixels(torch.from_numpy(frames[t]))

    with torch.inference_mode(), inference_context(device, precision):
        for _ in track(tracker, [group], frame, args.frames + 1):
            _sync(device)
            now = [time.perf_counter(), time.process_time()]
            times.append((now[0] - clock[0], now[1] - clock[1]))
            clock = now
    steps = times[1:]  # the first includes the key frame
    return {
        "propagator": name,
        "variant": variant,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "input": tracker.side,
        "device": str(device),
        "precision": args.precision,
        "threads": args.threads,
        "size": f"{height}x{width}",
        "frames": args.frames,
        "build_s": round(build_s, 2),
        "key_and_first_s": round(times[0][0], 3),
        "frame_s_median": round(statistics.median(s[0] for s in steps), 3),
        "frame_cpu_s_median": round(statistics.median(s[1] for s in steps), 3),
        "peak_gb": round(_peak_gb(device), 2),
    }


def _line(result: dict[str, Any]) -> str:
    return (
        f"{result['propagator']:12s} {result.get('variant', 'full'):5s} "
        f"{result['device']} {result['precision']} {result['size']}: "
        f"{result['frame_s_median']} s per frame ({result['frame_cpu_s_median']} CPU s), "
        f"peak {result['peak_gb']} GB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--propagators", default="sam2,sam3_tracker,edgetam")
    parser.add_argument("--variants", default="tiny,small", help="tiny, small, full")
    parser.add_argument("--aot", action="store_true", help="also the full AOT (6 views)")
    parser.add_argument("--frames", type=int, default=4, help="frames after the key frame")
    parser.add_argument("--size", type=_size, default=(240, 432), help="HxW (default 240x432)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16, fp16 (cuda)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    context = get_context("spawn")
    jobs = [
        (measure_tracker, (name, variant, args))
        for name in args.propagators.split(",")
        for variant in args.variants.split(",")
    ]
    if args.aot:
        aot_args = argparse.Namespace(**vars(args), expressions=1, gap=None, max_long_term=None)
        jobs.append((measure, ("aot", aot_args)))
    for function, job in jobs:
        with context.Pool(1) as pool:  # a fresh process: its own peak memory
            result = pool.apply(function, job)
        print(_line(result))
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
