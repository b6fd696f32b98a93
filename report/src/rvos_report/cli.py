"""``python -m rvos_report [NODE ...] --work DIR --out DIR``: an HTML report of a set of runs.

NODE names run folders under ``--work`` (``$(WORK)/$(SPLIT)``); without any, the recipe's submitted
node and its inputs. The report is one folder that opens from disk (``index.html``): the J&F
table of the nodes against the ground truth (``--truth``, a folder of
``<video>/<exp_id>/<frame>.png``, or MeViS's mask_dict.json) and their official evaluations
(``make evaluate``), the
expressions worst first (paginated), and a page per expression with its frames and every node's
mask side by side, the key frames, where the runs of each vote disagree and which way the vote
went (the vote's inputs from the recipe), J&F curves over frames, and for the worst
``--videos`` expressions (and every ``--expression``) an overlay mp4. Videos are drawn in worker
processes; the folder is staged beside ``--out`` and renamed into place when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from rvos_core.atomic import replace_dir
from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main
from rvos_core.command import Parser
from rvos_core.data import Dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.parallel import default_workers, map_videos
from rvos_core.recipe import DEFAULT, load_recipe
from rvos_report import pages
from rvos_report.results import ExpressionResult, Layout
from rvos_report.sources import default_nodes, evaluation, ground_truth, key_frames, open_nodes
from rvos_report.video import (
    MovieJob,
    VideoJob,
    overlay_video,
    report_video,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_report", description=__doc__)
    parser.add_argument(
        "nodes", nargs="*", help="node names (default: the recipe's submitted node and its inputs)"
    )
    parser.add_argument(
        "--work", type=path_arg, required=True, help="the split's run folders: $(WORK)/$(SPLIT)"
    )
    parser.add_argument("--out", type=path_arg, required=True, help="the report folder to write")
    parser.add_argument(
        "--recipe",
        default=DEFAULT,
        help="recipe name or .toml: the nodes' kinds, the votes' inputs",
    )
    parser.add_argument(
        "--truth", type=path_arg, help="ground-truth masks: <video>/<exp_id>/<frame>.png"
    )
    add_dataset_args(parser, shard=False)
    parser.add_argument(
        "--frames", type=int, default=8, help="frames shown per expression (default 8)"
    )
    parser.add_argument(
        "--tile-width", type=int, default=240, help="pixels of one tile (default 240)"
    )
    parser.add_argument(
        "--videos", type=int, default=3, help="overlay videos of the worst expressions (default 3)"
    )
    parser.add_argument(
        "--expression",
        action="append",
        default=[],
        metavar="VIDEO/EXP_ID",
        help="also an overlay video of this expression",
    )
    parser.add_argument(
        "--fps", type=float, default=6.0, help="overlay video frame rate (default 6)"
    )
    parser.add_argument("--workers", type=int, help="processes (default: one per CPU, at most 8)")
    parser.add_argument(
        "--title", help="the report's title (default: the split and the work folder)"
    )
    return parser


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("frames", "tile_width", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.videos < 0 or args.fps <= 0:
        raise ConfigError("--videos must be at least 0 and --fps positive")


def chosen_expressions(dataset: Dataset, given: Sequence[str]) -> list[tuple[str, str]]:
    """(video, exp_id) of each ``--expression VIDEO/EXP_ID``, checked against the split."""
    chosen = []
    for text in given:
        video_id, _, exp_id = text.rpartition("/")
        if exp_id not in dataset.video(video_id).exp_ids:
            raise InputError(
                dataset.meta_path, f"--expression {text}: no such expression in video {video_id}"
            )
        chosen.append((video_id, exp_id))
    return chosen


def movies(
    results: Sequence[ExpressionResult],
    jobs: dict[str, VideoJob],
    worst: int,
    chosen: Sequence[tuple[str, str]],
) -> list[MovieJob]:
    """The overlay videos to make: the ``worst`` expressions, then the chosen ones."""
    ranked = sorted(results, key=lambda r: (-r.badness, r.video, r.exp_id))
    wanted = [(r.video, r.exp_id) for r in ranked[:worst]]
    wanted += [pair for pair in chosen if pair not in wanted]
    by_key = {(r.video, r.exp_id): r for r in results}
    return [MovieJob(jobs[video], by_key[video, exp]) for video, exp in wanted]


def build_report(args: argparse.Namespace, staged: Path) -> int:
    """Write the whole report into ``staged``; returns the number of expressions."""
    dataset = dataset_from_args(args)
    recipe = load_recipe(args.recipe)
    nodes = open_nodes(args.work, args.nodes or default_nodes(recipe), recipe, dataset)
    truth = ground_truth(dataset, args.truth)
    chosen = chosen_expressions(dataset, args.expression)
    layout = Layout(staged, tuple(nodes), args.frames, args.tile_width, args.fps)
    tables = [key_frames(node.root) for node in nodes]
    jobs = {
        v.id: VideoJob(
            layout,
            v,
            tuple(t.get(v.id, {}) for t in tables),
            None if truth is None else truth[v.id],
        )
        for v in dataset
    }
    workers = min(args.workers or default_workers(), max(len(jobs), 1))
    per_video = map_videos(report_video, list(jobs.values()), workers, desc="report")
    results = [r for rows in per_video for r in rows]
    todo = movies(results, jobs, args.videos, chosen)
    map_videos(
        overlay_video, todo, min(workers, max(len(todo), 1)), desc="overlay videos", unit="video"
    )
    title = args.title or f"RVOS report: {dataset.name} {dataset.split}, {args.work}"
    evaluations = [evaluation(node.root) for node in nodes]
    pages.write_index(staged, title, nodes, results, evaluations, truth is not None)
    return len(results)


def _body(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_counts(args)
    out: Path = args.out
    staged = out.parent / f".{out.name}.staging-{os.getpid()}"
    try:
        count = build_report(args, staged)
        replace_dir(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    print(f"report of {count} expressions: {out / 'index.html'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)
