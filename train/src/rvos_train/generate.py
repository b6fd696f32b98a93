"""``python -m rvos_train.generate --out DIR [--world v2]``: the generated training world of the
tiny models.

Writes ``DIR/data`` (a DATA folder: Ref-YouTube-VOS train, MeViS train and valid_u with ground
truth, RefCOCO/+/g, and a DAVIS-2017-style set whose train split holds the training videos and
whose val split the valid_u videos, for the propagators; rvos_core.synthetic's blobs, or with
``--world v2`` rvos_core.world, which also writes Ref-YouTube-VOS valid and test, MeViS valid and
Ref-DAVIS17, with as many test as valid videos) and ``DIR/pretrained/roberta-base`` (a byte-level
BPE tokenizer trained on the world's own expressions, within the tiny text encoder's vocabulary;
and ``DIR/pretrained/bert-base-uncased``, a WordPiece vocabulary for the tiny UNINEXT; with
``--world v2`` the training texts also hold every word of the grammar).
Everything is a function of the options; ``DIR/generated.json`` records them, and a second call
with the same options does nothing (other options: a ConfigError, nothing overwritten).
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
from rvos_core.synthetic import VideoSpec, write_davis, write_mevis_train, write_training_data
from rvos_core.world import VERSION
from rvos_core.world.grammar import vocabulary_phrases
from rvos_core.world.layouts import generate as generate_world
from rvos_nn.text import (
    ROBERTA_TOKENIZER,
    TEXT_ENCODERS,
    UNINEXT_BERT_TOKENIZER,
    train_bert_tokenizer,
    train_roberta_tokenizer,
)

RECORD = "generated.json"
VALID_SPLIT = "valid_u"
WORLDS = ("v1", "v2")


def video_specs(prefix: str, count: int, frames: int, size: tuple[int, int]) -> list[VideoSpec]:
    """``count`` videos of 2 to 4 expressions (1 or 2 objects)."""
    return [VideoSpec(f"{prefix}{i:03d}", 2 + i % 3, frames, size) for i in range(count)]


def generate(
    out: Path,
    *,
    videos: int,
    valid_videos: int,
    frames: int,
    size: tuple[int, int],
    seed: int,
    world: str = "v1",
) -> Path:
    """Write the world under ``out`` (see the module docstring); returns ``out``."""
    settings: dict[str, object] = {
        "videos": videos,
        "valid_videos": valid_videos,
        "frames": frames,
        "size": list(size),
        "seed": seed,
    }
    if world == "v2":
        settings["world"] = VERSION
    record = out / RECORD
    if record.is_file():
        if json.loads(record.read_text()) != settings:
            raise ConfigError(f"{out} holds a world generated with other options ({record})")
        return out
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    data = staging / "data"
    if world == "v2":
        counts = {"train": videos, "valid": valid_videos, "test": valid_videos}
        generate_world(data, seed=seed, counts=counts, frames=frames, size=size)
    else:
        _write_blobs(data, videos, valid_videos, frames, size, seed)
    captions = [e["exp"] for v in _expressions(data) for e in v["expressions"].values()]
    if world == "v2":
        captions += vocabulary_phrases()
    tokenizer = staging / "pretrained" / ROBERTA_TOKENIZER.folder
    train_roberta_tokenizer(tokenizer, captions, TEXT_ENCODERS["tiny-roberta"].vocab_size)
    bert = staging / "pretrained" / UNINEXT_BERT_TOKENIZER.folder
    train_bert_tokenizer(bert, captions, TEXT_ENCODERS["tiny-bert"].vocab_size)
    write_json(staging / RECORD, settings)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out


def _write_blobs(
    data: Path, videos: int, valid_videos: int, frames: int, size: tuple[int, int], seed: int
) -> None:
    """The first world (rvos_core.synthetic) under ``data``."""
    train, valid = (
        video_specs(p, n, frames, size) for p, n in (("t", videos), ("v", valid_videos))
    )
    write_training_data(data, train, seed)
    write_davis(data, {"train": train}, seed)
    if valid:
        write_mevis_train(data, valid, seed + 1, VALID_SPLIT)
        write_davis(data, {"val": valid}, seed + 1)


def _expressions(data: Path) -> list[dict]:
    files = [
        data / "refer_youtube_vos" / "meta_expressions" / "train" / "meta_expressions.json",
        data / "mevis" / "train" / "meta_expressions.json",
    ]
    return [v for f in files for v in json.loads(f.read_text())["videos"].values()]


def _size(text: str) -> tuple[int, int]:
    height, sep, width = text.partition("x")
    if not (sep and height.isdigit() and width.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected HxW, e.g. 96x160")
    return int(height), int(width)


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_train.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=path_arg, required=True, help="folder to write")
    parser.add_argument("--videos", type=int, default=24, help="training videos")
    parser.add_argument("--valid-videos", type=int, default=6, help="MeViS valid_u videos")
    parser.add_argument("--frames", type=int, default=8, help="frames per video")
    parser.add_argument("--size", type=_size, default=(96, 160), help="HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--world",
        choices=WORLDS,
        default="v1",
        help="v1: moving blobs (rvos_core.synthetic); v2: the referring-video world (rvos_core.world)",
    )
    args = parser.parse_args(argv)
    out = generate(
        args.out,
        videos=args.videos,
        valid_videos=args.valid_videos,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        world=args.world,
    )
    print(f"generated world: {out}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
