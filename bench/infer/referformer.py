"""ReferFormer benchmark: the full model (random weights) on 720p videos through the real driver.

Calls ``bench/infer/run.py`` (each measurement in a fresh process: build, predict every video of a
synthetic Ref-YouTube-VOS split, write the run folder) with ReferFormer's figures:

* ``python bench/infer/referformer.py``: one 36-frame 720x1280 video with 4 expressions (the
  longest Ref-YouTube-VOS valid videos list 36 frames), with backbone reuse (mode ``reuse``: one
  Video-Swin pass per video) and without (``separate``: one full forward per expression).
* ``--scan 4,9,18,36``: memory against frames (mode ``reuse``, one expression, one video per
  frame count): the whole video goes through one forward, as upstream; ``--option chunk_frames=N``
  bounds it (clips of N frames, an approximation of upstream; see rvos_referformer.predictor).

Memory grows linearly with frames (every activation is per frame) plus the pixel decoder's
clip-wide self-attention (T * h * w / r^2 tokens per level, flash attention: no T^2 matrix is
kept). Frames are resized to a short side of 360 before the model, so the model cost does not
depend on the original size; the driver's own cost (decoding JPEGs, resizing the logits back,
writing PNGs) does.

    python bench/infer/referformer.py [--frames 36] [--size 720x1280] [--expressions 4]
        [--videos 1] [--scan F1,F2,...] [--device cuda] [--precision bf16] [--option k=v]
        [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/infer/run.py, the driver-level benchmark


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", default="full", help="full (default) or tiny")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", default="720x1280", help="frame size HxW")
    parser.add_argument("--expressions", type=int, default=4)
    parser.add_argument("--videos", type=int, default=1)
    parser.add_argument("--modes", default="reuse,separate")
    parser.add_argument("--scan", help="comma-separated frame counts: memory against frames")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0)
    return parser


def _common(args: argparse.Namespace) -> list[str]:
    out = ["referformer", "--variant", args.variant, "--size", args.size]
    out += ["--device", args.device, "--precision", args.precision, "--threads", str(args.threads)]
    for option in args.option:
        out += ["--option", option]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.scan:
        for frames in (int(f) for f in args.scan.split(",")):
            run.main([*_common(args), "--frames", str(frames), "--expressions", "1",
                      "--videos", "1", "--modes", "reuse"])  # fmt: skip
        return 0
    return run.main([
        *_common(args), "--frames", str(args.frames), "--expressions", str(args.expressions),
        "--videos", str(args.videos), "--modes", args.modes,
    ])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
