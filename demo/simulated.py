"""The laptop demo: a recipe's Make chain on generated data, in a minute, with no weights.

``python demo/simulated.py prepare --out DIR [--recipe NAME]`` writes a small Ref-YouTube-VOS-style split
(``DIR/data``) with ground truth (``DIR/truth.npz`` and masks ``DIR/truth/<video>/<exp_id>/<frame>.png``), and the model and propagated runs the recipe starts
from (``DIR/work/valid/<node>``). They are SIMULATED: each "model" is the ground truth with its own
kind of error (a shift, missed frames, a wrong object, speckle), so that the votes have something to
correct. ``python demo/simulated.py propagate ...`` is the stand-in propagator the demo hands to
Make (same command line as ``rvos_vos.propagate``, several --run/--out pairs included): it copies each
input run (identity propagation).
``python demo/simulated.py report --out DIR`` prints J, F and J&F of every node against the truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from rvos_core.atomic import write_bytes, write_json
from rvos_core.cli import add_dataset_args, dataset_from_args, run_main, shard_from_args
from rvos_core.command import Parser
from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError
from rvos_core.masks import encode_mask_png, quantize_probs
from rvos_core.recipe import DEFAULT, Recipe, load_recipe
from rvos_core.runfolder import Run, RunRecord, RunWriter, VideoResult, VideoWriter
from rvos_core.runner import Stage, Target, run_stage
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos


@dataclass(frozen=True)
class SimulatedModel:
    """How a simulated model errs: shift (pixels), share of missed frames, share of frames that
    show the other object, speckle density; ``probability`` models store probabilities."""

    shift: int
    missed: float
    swapped: float
    speckle: float
    probability: bool = False


# How each model of the default recipe errs (by registered model name); a model without a profile
# takes one of these in turn. UNINEXT stores probabilities, as the real one does.
PROFILES = {
    "soc": SimulatedModel(2, 0.05, 0.05, 0.002),
    "mutr": SimulatedModel(-3, 0.10, 0.05, 0.002),
    "referformer": SimulatedModel(4, 0.15, 0.10, 0.004),
    "uninext_vith": SimulatedModel(-1, 0.05, 0.10, 0.001, probability=True),
    "uninext_convnext": SimulatedModel(3, 0.10, 0.15, 0.003, probability=True),
}


def given_runs(recipe: Recipe) -> tuple[dict[str, SimulatedModel], dict[str, str]]:
    """What the demo simulates: the recipe's model runs (node -> how it errs) and the
    propagations of model runs (node -> its model node); Make derives every other node."""
    fallback = list(PROFILES.values())
    models = {
        node.name: PROFILES.get(node.producer, fallback[k % len(fallback)])
        for k, node in enumerate(recipe.of_kind("model"))
    }
    propagated = {
        node.name: node.inputs[0]
        for node in recipe.of_kind("propagation")
        if node.inputs[0] in models
    }
    return models, propagated


SPECS = [
    VideoSpec(f"demo{i:04d}", expressions=3 + i % 3, frames=12, size=(180, 320)) for i in range(8)
]


def simulate(
    truth: dict[str, np.ndarray], model: SimulatedModel, seed: int
) -> dict[str, np.ndarray]:
    """A model's masks: the truth with the model's errors, per expression [T, H, W]."""
    rng = np.random.default_rng(seed)
    objects = sorted(truth)
    out = {}
    for exp_id in objects:
        masks = np.roll(truth[exp_id], model.shift, axis=2).copy()
        other = truth[objects[(objects.index(exp_id) + 2) % len(objects)]]
        for t in range(masks.shape[0]):
            draw = rng.random()
            if draw < model.missed:
                masks[t] = False
            elif draw < model.missed + model.swapped:
                masks[t] = other[t]
        out[exp_id] = masks ^ (rng.random(masks.shape) < model.speckle)
    return out


def _write(
    root: Path,
    dataset: Dataset,
    masks_of: dict[str, dict[str, np.ndarray]],
    probability: bool,
    seed: int,
) -> None:
    meta = {"producer": "demo (simulated)", "value_domain": "probability" if probability else "logit",
            "has_scores": True, "has_probs": probability}  # fmt: skip
    writer = RunWriter(root, dataset, meta)
    rng = np.random.default_rng(seed)
    for video in dataset:
        masks = masks_of[video.id]
        scores = {e: rng.random(len(video.frames)).round(4).tolist() for e in video.exp_ids}
        probs = (
            {e: quantize_probs(np.where(m, 0.8, 0.1).astype(np.float32)) for e, m in masks.items()}
            if probability
            else None
        )
        writer.write_video(video, VideoResult(masks=masks, scores=scores, probs=probs))
    writer.finalize()


def write_truth_pngs(
    folder: Path, dataset: Dataset, truth: dict[str, dict[str, np.ndarray]]
) -> None:
    """The ground truth as ``<video>/<exp_id>/<frame>.png`` (0 / 255), what the HTML report
    (``make report TRUTH=...``) reads."""
    for video in dataset:
        for exp_id, masks in truth[video.id].items():
            for frame, mask in zip(video.frames, masks, strict=True):
                write_bytes(folder / video.id / exp_id / f"{frame}.png", encode_mask_png(mask))


def prepare(out: Path, recipe: Recipe) -> None:
    """Write the demo dataset, its ground truth and the simulated given runs under ``out``."""
    models, propagated = given_runs(recipe)
    write_refytvos(out / "data", "valid", SPECS)
    dataset = open_dataset("refytvos", out / "data", "valid")
    truth = {s.id: expression_masks(s) for s in SPECS}
    np.savez_compressed(
        out / "truth.npz", **{f"{v}/{e}": m for v, t in truth.items() for e, m in t.items()}
    )
    write_truth_pngs(out / "truth", dataset, truth)
    work = out / "work" / "valid"
    simulated = {}
    for k, (node, model) in enumerate(models.items()):
        simulated[node] = {
            v: simulate(t, model, seed=1000 * k + i) for i, (v, t) in enumerate(truth.items())
        }
        _write(work / node, dataset, simulated[node], model.probability, seed=k)
    for k, (node, source) in enumerate(propagated.items()):
        # a propagation repairs some of its model's missed and swapped frames: re-simulate with half the errors
        base = models[source]
        better = SimulatedModel(base.shift, base.missed / 2, base.swapped / 2, base.speckle)
        masks = {
            v: simulate(t, better, seed=5000 + 1000 * k + i)
            for i, (v, t) in enumerate(truth.items())
        }
        _write(work / node, dataset, masks, False, seed=50 + k)
    now = time.time()  # given inputs are older than what Make derives from them
    for node in (*models, *propagated):
        age = 100 if node in models else 50
        os.utime(work / node / "run.json", (now - age, now - age))
    print(f"demo data and simulated runs under {out}")


@dataclass
class IdentityPropagation(Stage):
    """Stand-in propagator (identity): copies the input run's masks and scores."""

    method: str
    source: Run
    name: str = "demo propagate"

    @property
    def inputs(self) -> list[Path]:
        return [self.source.root]

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord(
            producer=f"demo propagate ({self.method}, identity stand-in)",
            value_domain="binary",
            has_scores=self.source.has_scores,
            has_probs=False,
            inputs=(self.source.input_record(),),
        )

    def write_video(self, out: VideoWriter) -> None:
        video = out.video
        scores = self.source.scores(video) if self.source.has_scores else {}
        for exp_id in video.exp_ids:
            out.write_masks(exp_id, self.source.masks(video, exp_id))
            if scores:
                out.write_scores(exp_id, scores[exp_id])


def propagate(args: argparse.Namespace) -> int:
    """The stand-in propagator's command (see IdentityPropagation): each --run into its --out."""
    if len(args.run) != len(args.out):
        raise ConfigError(f"{len(args.run)} --run but {len(args.out)} --out")
    for run, out in zip(args.run, args.out, strict=True):
        stage = IdentityPropagation(args.method, Run(run))
        run_stage(stage, Target(out, dataset_from_args(args), shard_from_args(args)))
    return 0


def _scores(out: Path) -> list[tuple[str, float, float]]:
    """(node, J, F) of every complete run of the demo: per expression the mean over frames, then
    the mean over expressions (the MeViS convention), with rvos_eval's exact J and F."""
    from rvos_eval.metrics import video_jf

    dataset = open_dataset("refytvos", out / "data", "valid")
    truth = np.load(out / "truth.npz")
    rows = []
    for node in sorted(p.parent.name for p in (out / "work" / "valid").glob("*/run.json")):
        run, j, f = Run(out / "work" / "valid" / node), [], []
        for video in dataset:
            for exp_id in video.exp_ids:
                per_j, per_f = video_jf(truth[f"{video.id}/{exp_id}"], run.masks(video, exp_id))
                j.append(per_j.mean())
                f.append(per_f.mean())
        rows.append((node, float(np.mean(j)), float(np.mean(f))))
    return rows


def report(out: Path) -> int:
    """Print J, F and J&F of every node against the ground truth; also written to report.json."""
    rows = _scores(out)
    print(f"{'node':<26}{'J':>8}{'F':>8}{'J&F':>8}")
    for node, j, f in rows:
        print(f"{node:<26}{j:>8.4f}{f:>8.4f}{(j + f) / 2:>8.4f}")
    table = {node: {"J": j, "F": f, "J&F": (j + f) / 2} for node, j, f in rows}
    write_json(out / "report.json", table)
    return 0


def _body(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python demo/simulated.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "report"):
        sub.add_parser(name).add_argument("--out", type=Path, required=True)
    sub.choices["prepare"].add_argument("--recipe", default=DEFAULT, help="a recipe name or .toml")
    prop = sub.add_parser("propagate", help="identity stand-in for rvos_vos.propagate")
    prop.add_argument("method", help="the propagator it stands in for")
    prop.add_argument("--checkpoint", type=Path)
    prop.add_argument("--run", type=Path, action="append", required=True)
    prop.add_argument("--out", type=Path, action="append", required=True)
    prop.add_argument("--device")
    prop.add_argument("--precision")
    add_dataset_args(prop)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, load_recipe(args.recipe))
        return 0
    return report(args.out) if args.command == "report" else propagate(args)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)


if __name__ == "__main__":
    sys.exit(main())
