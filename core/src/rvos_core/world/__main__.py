"""``python -m rvos_core.world --out DIR``: write the generated referring-video world (docs/world.md).

DIR becomes a DATA folder that every reader of the project opens (Ref-YouTube-VOS, MeViS,
Ref-DAVIS17, RefCOCO/+/g, DAVIS-2017) and ``DIR/world.json`` records the version and the options.
Everything is a function of the options: a second call with the same options does nothing, other
options are a ConfigError (nothing is overwritten). The folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from rvos_core.atomic import write_json
from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_core.errors import ConfigError
from rvos_core.world import VERSION
from rvos_core.world.layouts import write_world

RECORD = "world.json"


def generate(
    out: Path, *, seed: int, counts: dict[str, int], frames: int, size: tuple[int, int]
) -> Path:
    """Write the world under ``out`` (see the module docstring); returns ``out``."""
    settings = {
        "version": VERSION,
        "seed": seed,
        "videos": counts,
        "frames": frames,
        "size": list(size),
    }
    record = out / RECORD
    if record.is_file():
        if json.loads(record.read_text()) != settings:
            raise ConfigError(f"{out} holds a world of other options or version ({record})")
        return out
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {RECORD}: choose another --out")
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    write_world(staging, seed, counts, frames, size)
    write_json(staging / RECORD, settings)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out


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
