"""``python -m rvos_core.world --out DIR``: write the generated referring-video world (docs/world.md).

DIR becomes a DATA folder that every reader of the project opens (Ref-YouTube-VOS, MeViS,
Ref-DAVIS17, RefCOCO/+/g, DAVIS-2017) and ``DIR/world.json`` records the version and the options
(rvos_core.world.layouts.generate).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_core.world import VERSION
from rvos_core.world.layouts import generate


def size_arg(text: str) -> tuple[int, int]:
    """argparse type of HxW."""
    height, sep, width = text.partition("x")
    if not (sep and height.isdigit() and width.isdigit() and int(height) >= 32 <= int(width)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected HxW of 32 pixels or more, e.g. 96x160"
        )
    return int(height), int(width)


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_core.world", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=path_arg, required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, default=48, help="train videos")
    parser.add_argument("--valid-videos", type=int, default=12, help="valid videos (ground truth)")
    parser.add_argument("--test-videos", type=int, default=12, help="test videos (no ground truth)")
    parser.add_argument("--frames", type=int, default=12, help="frames per video (6 or more)")
    parser.add_argument("--size", type=size_arg, default=(96, 160), help="HxW (default 96x160)")
    args = parser.parse_args(argv)
    if args.frames < 6:
        parser.error("--frames: 6 or more (objects stop and start a third into the video)")
    counts = {"train": args.videos, "valid": args.valid_videos, "test": args.test_videos}
    out = generate(args.out, seed=args.seed, counts=counts, frames=args.frames, size=args.size)
    print(f"world {VERSION}: {out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
