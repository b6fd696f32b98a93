"""``python -m rvos_fusion``: vote, split-pth, import-png, submission.

Every command writes a run folder (or a zip) atomically, says what it did in one line on stderr
(the runs: rvos_core.runner) and exits 2 with ``error: <file>: <problem>`` on bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from rvos_core.cli import (
    add_dataset_args,
    dataset_from_args,
    path_arg,
    run_main,
    shard_from_args,
)
from rvos_core.command import Parser
from rvos_core.data import Dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.parallel import default_workers
from rvos_core.recipe import load_recipe
from rvos_core.runfolder import Run
from rvos_fusion.importers import import_png, import_pth
from rvos_fusion.submission import write_submission
from rvos_fusion.vote import VoteConfig, run_vote


def _unpaired(text: str) -> float | str:
    if text == "reference":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected 'reference' or a number of votes") from None


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated numbers") from None


def _vote_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vote", help="vote K runs into one run")
    parser.add_argument(
        "runs", nargs="+", type=path_arg, help="input run folders (run 0 = reference)"
    )
    parser.add_argument("--out", type=path_arg, required=True, help="output run folder")
    parser.add_argument("--recipe", type=path_arg, help="a recipe name or .toml (with --rule)")
    parser.add_argument("--rule", help="take the settings of this vote rule of --recipe")
    parser.add_argument("--grouping", choices=("pairs", "none"), help="default: the dataset's")
    parser.add_argument("--min-votes", type=float, default=0.0, help="hard: fg iff votes >= this")
    parser.add_argument("--unpaired", type=_unpaired, help="'reference' or a vote threshold")
    parser.add_argument("--key-frames-from", type=int, help="index of the run giving key frames")
    parser.add_argument("--weights", type=_weights, help="one weight per run, e.g. 2,1,1")
    parser.add_argument("--soft", action="store_true", help="average stored probabilities")
    parser.add_argument("--soft-threshold", type=float, default=0.5)
    parser.add_argument(
        "--compat-unpaired-sigmoid",
        action="store_true",
        help="reproduce upstream's unpaired-expression bug (docs/upstream.md)",
    )
    parser.add_argument("--workers", type=int, default=default_workers())
    add_dataset_args(parser)


def _import_parsers(sub: argparse._SubParsersAction) -> None:
    pth = sub.add_parser("split-pth", help="import upstream per-model .pth dict(s) as a run")
    pth.add_argument("files", nargs="+", type=path_arg, help="the .pth, or all its chunk files")
    pth.add_argument("--domain", choices=("logit", "probability"), required=True)
    pth.add_argument("--out", type=path_arg, required=True)
    pth.add_argument("--no-probs", action="store_true", help="do not store probabilities")
    add_dataset_args(pth, shard=False)
    png = sub.add_parser("import-png", help="import an upstream <video>/<exp>/<frame>.png tree")
    png.add_argument("folder", type=path_arg)
    png.add_argument("--out", type=path_arg, required=True)
    png.add_argument("--key-frames", type=path_arg, help="its key_frame.json (upstream layout)")
    add_dataset_args(png, shard=False)


def _submission_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("submission", help="package a run as the server's zip")
    parser.add_argument("run", type=path_arg)
    parser.add_argument("--out", type=path_arg, required=True, help="the .zip to write")
    add_dataset_args(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_fusion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _vote_parser(sub)
    _import_parsers(sub)
    _submission_parser(sub)
    return parser


RULE_FLAGS = ("grouping", "min_votes", "unpaired", "key_frames_from", "weights", "soft")


def _rule_config(args: argparse.Namespace, dataset: Dataset) -> VoteConfig:
    """The settings of rule ``--rule`` of ``--recipe`` for the dataset's expression grouping."""
    given = [
        f"--{f.replace('_', '-')}" for f in RULE_FLAGS if getattr(args, f) not in (None, False, 0.0)
    ]
    if args.recipe is None or given:
        raise ConfigError(
            "--rule takes its settings from --recipe; "
            + (f"drop {', '.join(given)}" if given else "give --recipe")
        )
    recipe = load_recipe(str(args.recipe))
    if args.rule not in recipe.rules:
        raise InputError(
            recipe.source, f"no vote rule {args.rule!r}; rules: {', '.join(recipe.rules)}"
        )
    settings = recipe.rules[args.rule].for_grouping(dataset.grouping)
    config = VoteConfig.from_settings(settings, recipe.source)
    return replace(config, compat_unpaired_sigmoid=args.compat_unpaired_sigmoid)


def _config(args: argparse.Namespace, dataset: Dataset) -> VoteConfig:
    if args.rule is not None:
        return _rule_config(args, dataset)
    grouping = args.grouping or dataset.grouping
    if args.soft and args.min_votes:
        raise ConfigError("--soft averages probabilities: give --soft-threshold, not --min-votes")
    return VoteConfig(
        min_votes=args.min_votes,
        grouping=grouping,
        unpaired=args.unpaired,
        key_frames_from=args.key_frames_from,
        weights=args.weights,
        mode="soft" if args.soft else "hard",
        soft_threshold=args.soft_threshold,
        compat_unpaired_sigmoid=args.compat_unpaired_sigmoid,
    )


def cmd_vote(args: argparse.Namespace) -> int:
    dataset = dataset_from_args(args)
    runs = [Run(path) for path in args.runs]
    config = _config(args, dataset)
    run_vote(runs, dataset, config, args.out, shard_from_args(args), args.workers)
    return 0


def cmd_split_pth(args: argparse.Namespace) -> int:
    import_pth(args.files, args.domain, dataset_from_args(args), args.out, not args.no_probs)
    return 0


def cmd_import_png(args: argparse.Namespace) -> int:
    import_png(args.folder, dataset_from_args(args), args.out, args.key_frames)
    return 0


def cmd_submission(args: argparse.Namespace) -> int:
    count = write_submission(Run(args.run), dataset_from_args(args), args.out)
    print(f"{args.out}: {count} masks")
    return 0


COMMANDS = {
    "vote": cmd_vote,
    "split-pth": cmd_split_pth,
    "import-png": cmd_import_png,
    "submission": cmd_submission,
}


def _body(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)
