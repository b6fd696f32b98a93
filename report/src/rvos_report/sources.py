"""What a report reads: the nodes (complete run folders of one split), the inputs of the votes
among them (from the recipe), the official evaluation of a node (``make evaluate``) and the
ground truth of a folder of masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_core.recipe import Recipe
from rvos_core.runfolder import Run
from rvos_eval.mevis import VideoTask, build_tasks
from rvos_eval.readers import decode_rles, read_gray_mask
from rvos_report.render import RGB, colour


@dataclass(frozen=True)
class Node:
    """One node of the report.

    Attributes:
        kind: the recipe's kind of the node (model, propagation, vote), "run" outside the recipe.
        vote_inputs: for a vote of the recipe, the run folders it voted over.
    """

    name: str
    root: Path
    colour: RGB
    kind: str
    producer: str
    vote_inputs: tuple[Path, ...] = ()


def default_nodes(recipe: Recipe) -> list[str]:
    """The recipe's submitted node and the nodes it is made from (inputs first)."""
    final = recipe.node(recipe.submission)
    return [*final.inputs, final.name]


def open_run(root: Path, dataset: Dataset) -> Run:
    """The complete run folder at ``root`` for ``dataset``; else an InputError naming the folder."""
    run = Run(root)
    run.check_dataset(dataset)
    return run


def key_frames(root: Path) -> dict[str, dict[str, int]]:
    """video -> exp_id -> key frame of a run's key_frame.json (empty for a run without scores)."""
    run = Run(root)
    if not run.has_scores:
        return {}
    table = run.key_frames()
    try:
        return {
            video: {exp: int(entry["index_info"]["class_index"]) for exp, entry in exps.items()}
            for video, exps in table.items()
        }
    except (AttributeError, KeyError, TypeError, ValueError):
        raise InputError(run.root / "key_frame.json", "not the key-frame layout") from None


def open_nodes(work: Path, names: list[str], recipe: Recipe, dataset: Dataset) -> list[Node]:
    """The named nodes under ``work`` (``$(WORK)/$(SPLIT)``), each checked complete and of
    ``dataset``, with the inputs of every vote of the recipe among them."""
    if len(set(names)) != len(names):
        raise InputError(work, f"a node is named twice: {' '.join(names)}")
    in_recipe = {node.name: node for node in recipe.nodes}
    nodes = []
    for index, name in enumerate(names):
        run = open_run(work / name, dataset)
        step = in_recipe.get(name)
        inputs: tuple[Path, ...] = ()
        if step is not None and step.kind == "vote":
            inputs = tuple(open_run(work / source, dataset).root for source in step.inputs)
        nodes.append(
            Node(
                name=name,
                root=run.root,
                colour=colour(index),
                kind=step.kind if step is not None else "run",
                producer=str(run.meta.get("producer", "")),
                vote_inputs=inputs,
            )
        )
    return nodes


def evaluation(root: Path) -> dict[str, Any] | None:
    """The node's official evaluation (``<node>/eval/summary.json`` of ``make evaluate``) as
    {"benchmark": "<dataset> <split>", "J", "F", "J&F"}, or None when it was not evaluated."""
    path = root / "eval" / "summary.json"
    if not path.is_file():
        return None
    summary = load_json(path)
    table = summary.get("global", summary) if isinstance(summary, dict) else None
    if not isinstance(table, dict):
        raise InputError(path, "not an rvos_eval summary")
    pick = {"J&F": ("J&F", "J&F-Mean"), "J": ("J", "J-Mean"), "F": ("F", "F-Mean")}
    scores = {k: next((table[n] for n in names if n in table), None) for k, names in pick.items()}
    benchmark = f"{summary.get('dataset', '?')} {summary.get('split', '?')}"
    return {"benchmark": benchmark, **scores}


@dataclass(frozen=True)
class FolderTruth:
    """Ground truth as a folder of masks ``<video>/<exp_id>/<frame>.png`` (non-zero =
    foreground), e.g. the Annotations/ of a run folder or exported MeViS masks."""

    root: Path

    def check(self, dataset: Dataset) -> None:
        """Every video of ``dataset`` must have its folder."""
        if not self.root.is_dir():
            raise InputError(self.root, "ground-truth folder does not exist")
        for video in dataset:
            if not (self.root / video.id).is_dir():
                raise InputError(self.root / video.id, "ground truth of this video is missing")

    def masks(self, video: Video, exp_id: str, shape: tuple[int, int]) -> np.ndarray:
        """bool [T, H, W] of one expression."""
        folder = self.root / video.id / exp_id
        return np.stack([read_gray_mask(folder / f"{frame}.png", shape) for frame in video.frames])


@dataclass(frozen=True)
class MevisTruth:
    """MeViS ground truth of one video (its entries of mask_dict.json): per frame the union of
    the expression's anno_id masks, as the official script scores them."""

    task: VideoTask

    def masks(self, video: Video, exp_id: str, shape: tuple[int, int]) -> np.ndarray:
        """bool [T, H, W] of one expression."""
        anno_ids = dict(self.task.expressions)[exp_id]
        frames = np.zeros((len(video.frames), *shape), bool)
        for t in range(len(video.frames)):
            present = [a for a in anno_ids if self.task.rles[a][t] is not None]
            where = [f"anno_id {a}, frame {t}" for a in present]
            rles = [self.task.rles[a][t] for a in present]
            for mask in decode_rles(rles, shape, self.task.mask_dict, where):
                frames[t] |= mask
        return frames


Truth = FolderTruth | MevisTruth


def ground_truth(dataset: Dataset, folder: Path | None) -> dict[str, Truth] | None:
    """Each video's ground truth: the masks of ``folder`` when given, else MeViS's mask_dict.json
    when the split has one; None without either."""
    if folder is not None:
        truth = FolderTruth(folder)
        truth.check(dataset)
        return {video.id: truth for video in dataset}
    mask_dict = dataset.extra.get("mask_dict")
    if dataset.name != "mevis" or mask_dict is None or not Path(mask_dict).is_file():
        return None
    tasks = build_tasks(dataset, Path(mask_dict), Path(mask_dict).parent)
    return {task.video: MevisTruth(task) for task in tasks}
