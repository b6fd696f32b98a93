"""Pieces every command-line tool shares: dataset options, shard option, error reporting."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rvos_core.allocator import keep_freed_memory
from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import RvosError
from rvos_core.paths import load_paths
from rvos_core.shard import parse_shard


def add_dataset_args(parser: argparse.ArgumentParser, shard: bool = True) -> None:
    """--data, --dataset, --split (defaults from paths.env) and optionally --shard i/n."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--data", type=Path, help="dataset root (default: DATA of paths.env)")
    group.add_argument("--dataset", default="refytvos", help="refytvos, mevis or refdavis")
    group.add_argument("--split", help="split name (default: SPLIT of paths.env)")
    if shard:
        group.add_argument("--shard", help="i/n: do every n-th video starting at i")


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    """Open the dataset named by the options of add_dataset_args."""
    if args.data is None or args.split is None:
        paths = load_paths()
        data = args.data or paths.require_dir("DATA")
        split = args.split or paths.split
    else:
        data, split = args.data, args.split
    return open_dataset(args.dataset, Path(data), split)


def shard_from_args(args: argparse.Namespace) -> tuple[int, int]:
    return parse_shard(getattr(args, "shard", None))


def run_main(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI body; an RvosError becomes 'error: ...' on stderr and exit status 2.

    Also keeps freed memory in the process (rvos_core.allocator): every tool decodes frames.
    """
    keep_freed_memory()
    try:
        return body(argv)
    except RvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished videos are kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
