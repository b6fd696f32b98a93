"""UNINEXT benchmark: ViT-H and ConvNeXt-L (full size, random weights) through the real driver.

Calls ``bench/infer/run.py`` (each measurement in a fresh process: build, predict every video of a
synthetic Ref-YouTube-VOS split, write the run folder) once per backbone, with UNINEXT's figures:
720x1280 frames (resized to 480x853 and padded to 480x864 inside the model, as upstream), modes
``reuse`` (the backbone once per video for all expressions) and ``separate`` (once per
expression, upstream's cost).

UNINEXT predicts every frame on its own, so time and memory are per frame: time grows linearly
with frames x (1 backbone + E transformer passes) with reuse, frames x E x (backbone + transformer)
without; memory does not grow with frames beyond the cached per-frame features (~9 MB per frame at
480x864). The default CPU run is therefore short (3 frames, 2 expressions); on a GPU use e.g.
``--frames 36 --expressions 4 --device cuda [--precision bf16] [--option frame_batch=4]``.
Full-size weights in fp32: ViT-H ~3.1 GB (the RVOS model: 0.78 B parameters; the released file
also holds the 0.64 B-parameter template backbone, dropped at load), ConvNeXt-L ~1.3 GB.

    python bench/infer/uninext.py [--models uninext_vith,uninext_convnext] [--variant full]
        [--frames 3] [--size 720x1280] [--expressions 2] [--videos 1] [--modes reuse,separate]
        [--device cpu|cuda] [--precision fp32|bf16|fp16] [--option k=v] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/infer/run.py, the driver-level benchmark

MODELS = ("uninext_vith", "uninext_convnext")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--variant", default="full", help="full (default) or tiny")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--size", default="720x1280", help="frame size HxW")
    parser.add_argument("--expressions", type=int, default=2)
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--modes", default="reuse,separate")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0)
    return parser


def _arguments(model: str, args: argparse.Namespace) -> list[str]:
    out = [model, "--variant", args.variant, "--size", args.size, "--frames", str(args.frames)]
    out += ["--expressions", str(args.expressions), "--videos", str(args.videos)]
    out += ["--modes", args.modes, "--device", args.device, "--precision", args.precision]
    out += ["--threads", str(args.threads)]
    for option in args.option:
        out += ["--option", option]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    status = 0
    for model in models:
        print(f"== {model}", flush=True)
        status = max(status, run.main(_arguments(model, args)))
    return status


if __name__ == "__main__":
    sys.exit(main())
