"""``python -m rvos_eval RUN --dataset mevis|refytvos|refdavis|davis --out DIR``: J&F of a run.

RUN is a run folder (rvos_core.runfolder). refytvos scores a split that holds annotations with
MeViS's per-expression protocol (rvos_eval.mevis). Also accepted, as the official tools read them: for
mevis a plain ``<video>/<exp_id>/<frame>.png`` folder, for refdavis ReferFormer's output folder
(``anno_0`` .. ``anno_3`` of indexed PNGs), for davis a folder of indexed PNGs
``<sequence>/<frame>.png``. DATA and SPLIT default to paths.env. Prints a table and writes
``DIR/per_expression.csv`` (mevis) or ``DIR/per_object.csv`` and ``DIR/summary.json``, atomically,
only when everything was evaluated; bad input is ``error: <file>: <problem>`` and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from rvos_core.cli import dataset_from_args, path_arg, run_main
from rvos_core.command import Parser
from rvos_core.errors import ConfigError, InputError
from rvos_core.paths import load_paths
from rvos_eval import davis
from rvos_eval.report import number, numbers, objects_csv, text_table, write_report
from rvos_eval.stats import MEASURES

if TYPE_CHECKING:
    from rvos_core.data import Dataset
    from rvos_core.runfolder import Run

DATASETS = ("mevis", "refytvos", "refdavis", "davis")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m rvos_eval",
        description="J&F of a run on MeViS, Ref-DAVIS17 or DAVIS, exact to the official code (and on "
        "Ref-YouTube-VOS splits with annotations).",
    )
    parser.add_argument(
        "run",
        type=path_arg,
        help="run folder; or, as the official tools read them: mevis (and refytvos) "
        "<video>/<exp_id>/<frame>.png, "
        "refdavis ReferFormer's anno_0..anno_3, davis <sequence>/<frame>.png (indexed PNGs)",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data", type=path_arg, help="dataset root (default: DATA of paths.env)")
    parser.add_argument("--split", help="split (default: SPLIT of paths.env)")
    parser.add_argument(
        "--task", choices=davis.TASKS, default="semi-supervised", help="DAVIS task (davis only)"
    )
    parser.add_argument("--out", type=path_arg, required=True, help="folder for the CSV and JSON")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes (default: a pool only where it saves more time than its start-up costs, "
        "rvos_eval.workers; one process for a DAVIS-2017-sized set)",
    )
    return parser


def _data_and_split(args: argparse.Namespace) -> tuple[Path, str]:
    if args.data is not None and args.split is not None:
        return args.data, args.split
    paths = load_paths()
    return args.data or paths.require_dir("DATA"), args.split or paths.split


def _completed_run(path: Path, dataset: Dataset) -> Run | None:
    """The run folder at ``path`` (checked against ``dataset``), or None for another folder kind.

    A folder that looks like a run folder (Annotations/, .pending.json) but has no run.json is
    refused as incomplete.
    """
    from rvos_core.runfolder import RUN_JSON, Run  # imported for run folders only

    markers = (RUN_JSON, ".pending.json", "Annotations")
    if any((path / name).exists() for name in markers):
        run = Run(path)
        run.check_dataset(dataset)
        return run
    if not path.is_dir():
        raise InputError(path, "prediction folder does not exist")
    return None


def _mevis(args: argparse.Namespace) -> tuple[str, bytes, dict[str, Any], str]:
    from rvos_eval import mevis
    from rvos_eval.report import mevis_csv

    dataset = dataset_from_args(args)
    run = _completed_run(args.run, dataset)
    predictions = args.run / "Annotations" if run is not None else args.run
    result = mevis.evaluate_tasks(
        mevis.dataset_tasks(dataset, predictions), predictions, args.workers
    )
    missing = result.missing_videos
    summary = {
        "dataset": dataset.name,
        "split": dataset.split,
        "predictions": str(args.run),
        "J": number(result.j),
        "F": number(result.f),
        "J&F": number(result.jf),
        "num_expressions": len(result.expressions),
        "missing_videos": missing,
    }
    table = text_table(("J", "F", "J&F"), [(result.j, result.f, result.jf)])
    name = "Ref-YouTube-VOS" if dataset.name == "refytvos" else "MeViS"
    title = f"{name} {dataset.split}: {len(result.expressions)} expressions"
    if missing:
        title += f" ({len(missing)} videos without predictions score 0: {', '.join(missing)})"
    return "per_expression.csv", mevis_csv(result), summary, f"{title}\n{table}"


def _refdavis_layout(path: Path, dataset: Dataset) -> tuple[str, bool]:
    """("referformer", False) for ReferFormer's anno_<a> folders, else ("run", has_probs)."""
    from rvos_core.data.refdavis import RUNS
    from rvos_core.runfolder import RUN_JSON

    if not (path / RUN_JSON).is_file() and (path / RUNS[0]).is_dir():
        for name in RUNS:
            if not (path / name).is_dir():
                raise InputError(path / name, "annotator run folder is missing")
        return "referformer", False
    run = _completed_run(path, dataset)
    if run is None:
        raise InputError(path, f"neither a run folder (run.json) nor folders {', '.join(RUNS)}")
    return "run", run.has_probs


def _refdavis(args: argparse.Namespace) -> tuple[str, bytes, dict[str, Any], str]:
    from rvos_core.data.refdavis import RUNS
    from rvos_eval import refdavis

    dataset = dataset_from_args(args)
    layout, use_probs = _refdavis_layout(args.run, dataset)
    result = refdavis.evaluate(dataset, args.run, layout, use_probs, args.workers)
    overall = result.mean_over_runs
    overlaps = {"referformer": "as read", "run": "probabilities" if use_probs else "lowest object"}
    summary = {
        "dataset": "refdavis",
        "split": dataset.split,
        "predictions": str(args.run),
        "layout": layout,
        "overlaps": overlaps[layout],
        "J&F": number(overall["J&F-Mean"]),
        "J": number(overall["J-Mean"]),
        "F": number(overall["F-Mean"]),
        "mean_over_runs": numbers(overall),
        "runs": {name: numbers(t) for name, t in result.tables.items()},
        "num_objects_per_run": len(result.objects) // len(RUNS),
    }
    rows = [(name, t["J&F-Mean"], t["J-Mean"], t["F-Mean"]) for name, t in result.tables.items()]
    rows.append(("mean", overall["J&F-Mean"], overall["J-Mean"], overall["F-Mean"]))
    text = f"Ref-DAVIS17 {dataset.split}\n" + text_table(("run", "J&F", "J", "F"), rows)
    return "per_object.csv", objects_csv(result.objects), summary, text


def _davis(args: argparse.Namespace) -> tuple[str, bytes, dict[str, Any], str]:
    data, split = _data_and_split(args)
    split = davis.SPLIT_ALIASES.get(split, split)
    root = davis.find_root(Path(data))
    result = davis.evaluate(root, split, args.task, args.run, args.workers)
    table = result.table
    summary = {
        "dataset": "davis",
        "task": args.task,
        "split": split,
        "predictions": str(args.run),
        "global": numbers(table),
        "num_objects": len(result.objects),
    }
    text = f"DAVIS {split} {args.task}: {len(result.objects)} objects\n"
    text += text_table(MEASURES, [tuple(table[m] for m in MEASURES)])
    return "per_object.csv", objects_csv(result.objects), summary, text


def _body(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    evaluate = {"mevis": _mevis, "refytvos": _mevis, "refdavis": _refdavis, "davis": _davis}[
        args.dataset
    ]
    # J and F are many small OpenCV calls: its thread pool costs more CPU than it saves (workers
    # of a pool run single-threaded too, rvos_core.parallel)
    cv2.setNumThreads(1)
    csv_name, csv_data, summary, text = evaluate(args)
    write_report(args.out, csv_name, csv_data, summary)
    print(text)
    print(f"wrote {args.out / csv_name} and {args.out / 'summary.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)
