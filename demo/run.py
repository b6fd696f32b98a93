"""``make demo``: the default recipe, end to end, with the tiny zoo on the generated world.

``python demo/run.py prepare --out DIR --zoo ZOO [--dataset refytvos|mevis]`` writes the world the
zoo was trained on (``DIR/world/data``, regenerated from the options in the zoo's manifest: the same
bytes; a checkout whose generator draws another world is refused) and the ground truth of the
split the demo runs (Ref-YouTube-VOS valid or MeViS valid_u, videos the zoo never trained on) as
``DIR/truth-<dataset>/<video>/<exp_id>/<frame>.png`` for the HTML report. ``--world-seed S
--valid-videos N`` draws another world of the same generator instead (N valid videos nobody has
seen; the end-to-end quality test's).

Make then runs the recipe's chain with the zoo's weights through the real drivers
(``rvos_nn.infer --zoo``, ``rvos_vos.propagate --zoo``, the votes, the submission).

``python demo/run.py score --out DIR --work RUNS --recipe R [--dataset ...]`` scores every node of
the recipe against the ground truth (rvos_eval's per-expression protocol: J and F per expression
over its frames, then means) beside a baseline that reads no words (rvos_eval.baselines: every expression of
a video gets the exact mask of the largest of the targets its expressions refer to).
It prints the table with what propagation and each round of votes changed, and writes
``RUNS/scores.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.atomic import write_bytes, write_json
from rvos_core.cli import run_main
from rvos_core.command import Parser
from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError
from rvos_core.masks import encode_mask_png
from rvos_core.recipe import Recipe, load_recipe
from rvos_eval import mevis
from rvos_eval.baselines import LARGEST_TARGET, write_largest_target
from rvos_nn.zoo import Zoo
from rvos_train.generate import RECORD, generate

SPLITS = {"refytvos": "valid", "mevis": "valid_u"}


def prepare(
    out: Path, zoo: Path, dataset: str, seed: int | None = None, videos: int | None = None
) -> None:
    """The world under ``out/world`` and the split's ground truth PNGs: the zoo's world, or with
    ``seed`` / ``videos`` another draw of the same generator (a split nobody has seen: the
    quality test's)."""
    world = Zoo.open(zoo).manifest["world"]
    options = {k: world[k] for k in ("videos", "valid_videos", "frames", "seed")}
    if seed is not None or videos is not None:
        options |= {"videos": 1, "seed": options["seed"] if seed is None else seed}
        options["valid_videos"] = options["valid_videos"] if videos is None else videos
    folder = generate(out / "world", size=tuple(world["size"]), world="v2", **options)
    drawn = json.loads((folder / RECORD).read_text())
    if drawn["world"] != world["world"] or drawn["size"] != world["size"]:
        raise ConfigError(
            f"the zoo {zoo} was trained on {world['world']} at {world['size']}, this checkout "
            f"draws {drawn['world']}: rebuild the zoo (make zoo)"
        )
    data = open_dataset(dataset, folder / "data", SPLITS[dataset])
    truth = out / f"truth-{dataset}"
    for task in mevis.dataset_tasks(data, truth):
        for exp_id, masks in mevis.expression_truth(task).items():
            for frame, mask in zip(task.frames, masks, strict=True):
                write_bytes(truth / task.video / exp_id / f"{frame}.png", encode_mask_png(mask))
    print(
        f"demo: world {folder} (seed {options['seed']}), {dataset} {data.split}: {len(data)} videos"
    )


def score(dataset: Dataset, recipe: Recipe, work: Path) -> dict[str, dict[str, Any]]:
    """J, F, J&F of every complete node of ``recipe`` under ``work`` and of the baseline."""
    rows: dict[str, dict[str, Any]] = {}
    for node in recipe.nodes:
        if (work / node.name / "run.json").is_file():
            rows[node.name] = _row(dataset, work / node.name / "Annotations", node.stage)
    baseline = write_largest_target(dataset, work / "baseline-largest-target")
    rows[LARGEST_TARGET] = _row(dataset, baseline, "baseline")
    return rows


def _row(dataset: Dataset, predictions: Path, stage: str) -> dict[str, Any]:
    result = mevis.evaluate_tasks(mevis.dataset_tasks(dataset, predictions), predictions, workers=1)
    return {"stage": stage, "J": result.j, "F": result.f, "J&F": result.jf}


def changes(recipe: Recipe, rows: dict[str, dict[str, Any]]) -> list[str]:
    """What each derived node changed against its inputs: J&F of the node minus the best and the
    mean of its inputs' J&F."""
    lines = []
    for node in recipe.nodes:
        inputs = [rows[i]["J&F"] for i in node.inputs if i in rows]
        if node.name in rows and inputs:
            gain = rows[node.name]["J&F"] - max(inputs)
            mean = rows[node.name]["J&F"] - float(np.mean(inputs))
            lines.append(
                f"{node.name:<28} {gain:+.4f} vs its best input, {mean:+.4f} vs their mean "
                f"({', '.join(node.inputs)})"
            )
    return lines


def print_table(rows: dict[str, dict[str, Any]], title: str) -> None:
    print(title)
    print(f"{'node':<28}{'stage':<12}{'J':>8}{'F':>8}{'J&F':>8}")
    for name, row in rows.items():
        print(f"{name:<28}{row['stage']:<12}{row['J']:>8.4f}{row['F']:>8.4f}{row['J&F']:>8.4f}")


def _score(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe)
    dataset = open_dataset(args.dataset, args.data, SPLITS[args.dataset])
    rows = score(dataset, recipe, args.work)
    title = f"demo: {recipe.name} with the tiny zoo, {dataset.name} {dataset.split}"
    print_table(rows, f"{title} ({len(dataset)} videos)")
    print("\nJ&F change of each derived node:")
    print("\n".join(changes(recipe, rows)))
    write_json(args.work / "scores.json", rows)
    return 0


def _body(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python demo/run.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    first = sub.add_parser("prepare", help="the world and the split's ground truth")
    first.add_argument("--out", type=Path, required=True)
    first.add_argument("--zoo", type=Path, required=True)
    first.add_argument("--world-seed", type=int, help="another world than the zoo's (its seed)")
    first.add_argument("--valid-videos", type=int, help="another world's valid videos")
    second = sub.add_parser("score", help="J&F of every node and of the baseline")
    second.add_argument("--data", type=Path, required=True, help="the world's data folder")
    second.add_argument("--work", type=Path, required=True, help="the split's run folders")
    second.add_argument("--recipe", required=True, help="a recipe name or .toml")
    for command in (first, second):
        command.add_argument("--dataset", choices=sorted(SPLITS), default="refytvos")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, args.zoo, args.dataset, args.world_seed, args.valid_videos)
        return 0
    return _score(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)


if __name__ == "__main__":
    sys.exit(main())
