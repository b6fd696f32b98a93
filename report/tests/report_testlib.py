"""The small world of the report's tests: a generated split, its ground truth as masks, a recipe
of three model runs and a vote over them, and their run folders (written directly)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvos_core.atomic import write_bytes
from rvos_core.data import Dataset, open_dataset
from rvos_core.masks import encode_mask_png
from rvos_core.runfolder import RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos

NODES = ["exact", "shifted", "empty", "vote"]
SPECS = [VideoSpec(f"vid{i}", expressions=2 + i, frames=6, size=(48, 64)) for i in range(2)]
RECIPE = """
description = "report test: three runs and a majority vote"
submission = "vote"
[rules.majority]
pairs = { min_votes = 2 }
none = { min_votes = 2 }
[[nodes]]
name = "exact"
stage = "models"
model = "soc"
[[nodes]]
name = "shifted"
stage = "models"
model = "mutr"
[[nodes]]
name = "empty"
stage = "models"
model = "referformer"
[[nodes]]
name = "vote"
stage = "votes"
rule = "majority"
inputs = ["exact", "shifted", "empty"]
"""


@dataclass(frozen=True)
class World:
    data: Path
    truth: Path
    work: Path
    recipe: Path
    dataset: Dataset

    def args(self, out: Path, *extra: str) -> list[str]:
        """Command line of ``python -m rvos_report`` over this world."""
        return [
            "--work", str(self.work), "--out", str(out), "--recipe", str(self.recipe),
            "--data", str(self.data), "--split", "valid", "--workers", "1", *extra,
        ]  # fmt: skip


def _masks(truth: dict[str, np.ndarray], node: str) -> dict[str, np.ndarray]:
    """What each run of the world holds: the truth, the truth moved 6 pixels, nothing, and the
    majority of those three (= truth AND shifted)."""
    if node == "exact":
        return truth
    shifted = {e: np.roll(m, 6, axis=2) for e, m in truth.items()}
    if node == "shifted":
        return shifted
    if node == "empty":
        return {e: np.zeros_like(m) for e, m in truth.items()}
    return {e: m & shifted[e] for e, m in truth.items()}


def write_run(root: Path, dataset: Dataset, node: str, specs: list[VideoSpec] = SPECS) -> None:
    scored = node != "vote"
    meta = {"producer": f"test {node}", "value_domain": "binary", "has_scores": scored, "has_probs": False}  # fmt: skip
    writer = RunWriter(root, dataset, meta)
    for spec, video in zip(specs, dataset, strict=True):
        masks = _masks(expression_masks(spec), node)
        scores = {e: [float(t == 3) for t in range(spec.frames)] for e in masks}
        writer.write_video(video, VideoResult(masks=masks, scores=scores if scored else None))
    writer.finalize()


def report_data(out: Path) -> dict:
    """The index's data (data.js holds ``window.REPORT = {...};``)."""
    text = (out / "data.js").read_text()
    return json.loads(text.removeprefix("window.REPORT = ").rstrip().removesuffix(";"))


def make_world(root: Path) -> World:
    """Write the world under ``root``."""
    write_refytvos(root / "data", "valid", SPECS)
    dataset = open_dataset("refytvos", root / "data", "valid")
    for spec, video in zip(SPECS, dataset, strict=True):
        for exp_id, masks in expression_masks(spec).items():
            for frame, mask in zip(video.frames, masks, strict=True):
                write_bytes(
                    root / "truth" / video.id / exp_id / f"{frame}.png", encode_mask_png(mask)
                )
    for node in ("exact", "shifted", "empty", "vote"):
        write_run(root / "work" / node, dataset, node)
    (root / "recipe.toml").write_text(RECIPE)
    return World(root / "data", root / "truth", root / "work", root / "recipe.toml", dataset)
