"""Pieces every command-line tool shares: dataset options, shard option, error reporting."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from rvos_core.allocator import keep_freed_memory
from rvos_core.command import run_command
from rvos_core.data import Dataset, open_dataset
from rvos_core.paths import load_paths
from rvos_core.shard import parse_shard


def text_arg(text: str) -> str:
    """argparse type of an option whose value may not be empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value")
    return text


def path_arg(text: str) -> Path:
    """argparse type of a file or folder option; an empty value is an error, not the current folder."""
    return Path(text_arg(text))


def add_dataset_args(parser: argparse.ArgumentParser, shard: bool = True) -> None:
    """--data, --dataset, --split (defaults from paths.env) and optionally --shard i/n."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--data", type=path_arg, help="dataset root (default: DATA of paths.env)")
    group.add_argument("--dataset", default="refytvos", help="refytvos, mevis or refdavis")
    group.add_argument("--split", type=text_arg, help="split name (default: SPLIT of paths.env)")
    if shard:
        group.add_argument("--shard", help="i/n: do every n-th video starting at i")


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    """Open the dataset named by the options of add_dataset_args; paths.env is read only for an
    option that is not given."""
    data, split = args.data, args.split
    if data is None or split is None:
        paths = load_paths()
        data = data if data is not None else paths.require_dir("DATA", "--data")
        split = split if split is not None else paths.value("SPLIT", "--split")
    return open_dataset(args.dataset, data, split)


def shard_from_args(args: argparse.Namespace) -> tuple[int, int]:
    return parse_shard(getattr(args, "shard", None))


def run_main(body: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI body as ``rvos_core.command.run_command`` does (one ``error:`` line, status 2),
    keeping freed memory in the process (rvos_core.allocator): every tool decodes frames."""
    keep_freed_memory()
    return run_command(body, argv)
