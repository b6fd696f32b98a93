"""Benchmark of the fusion stages (the default recipe's votes) on a synthetic 720p set.

Builds (once, cached in --workdir) a Ref-YouTube-VOS-style split of N videos x 4 expressions x T
frames at 720x1280, the five model runs (two with stored probabilities, like UNINEXT) and the seven
propagated runs the recipe reads. Then times every fusion node of the default recipe and its floor:
decoding the node's input PNGs and encoding its output PNGs alone (the same files, no vote, no
checks). Each measurement runs in fresh single-threaded processes (best of --repeat), which
gives wall time, CPU time (the robust figure on a shared machine) and peak memory (VmHWM).
Reference: each node within 1.3x of its floor; peak memory independent of N.

    python bench/fusion/run.py [--videos 25] [--frames 30] [--workdir /tmp/rvos-bench-fusion]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from rvos_core.allocator import keep_freed_memory
from rvos_core.data import Dataset, open_dataset
from rvos_core.masks import encode_mask_png, png_pixels, quantize_probs
from rvos_core.recipe import load_recipe
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos
from rvos_fusion.submission import write_submission
from rvos_fusion.vote import VoteConfig, groups, run_vote

SIZE = (720, 1280)
RECIPE = load_recipe()  # the default recipe's graph: its model and propagated runs are given
MODELS = tuple(node.name for node in RECIPE.of_kind("model"))
PROBABILITY_MODELS = {n.name for n in RECIPE.of_kind("model") if n.producer.startswith("uninext")}
PROPAGATED = tuple(node.name for node in RECIPE.of_kind("propagation"))
NODES = {  # vote node -> (inputs, config); submission is timed separately
    node.name: (
        node.inputs,
        VoteConfig.from_settings(RECIPE.rules[node.producer].for_grouping("pairs"), RECIPE.source),
    )
    for node in RECIPE.of_kind("vote")
}


def jitter(masks: np.ndarray, shift: int) -> np.ndarray:
    """A model's version of the truth: shifted by ``shift`` pixels, with speckle noise."""
    rng = np.random.default_rng(shift + 100)
    moved = np.roll(masks, shift, axis=2)
    return moved ^ (rng.random(masks.shape) < 0.002)


def build(root: Path, n_videos: int, frames: int) -> Dataset:
    """Write the dataset meta and every input run (skipped when already there)."""
    specs = [VideoSpec(f"v{i:04d}", 4, frames, SIZE) for i in range(n_videos)]
    write_refytvos(root / "data", "valid", specs, frames=False)
    dataset = open_dataset("refytvos", root / "data", "valid")
    for k, node in enumerate(MODELS + PROPAGATED):
        if not (root / "work" / node / "run.json").exists():
            _write_input_run(
                root / "work" / node,
                dataset,
                specs,
                shift=3 * k - 12,
                probs=node in PROBABILITY_MODELS,
            )
    return dataset


def _write_input_run(
    out: Path, dataset: Dataset, specs: list[VideoSpec], shift: int, probs: bool
) -> None:
    meta = {
        "producer": "bench",
        "value_domain": "probability" if probs else "binary",
        "has_scores": True,
        "has_probs": probs,
    }
    writer = RunWriter(out, dataset, meta)
    for spec in specs:
        truth = expression_masks(spec)
        masks = {e: jitter(m, shift) for e, m in truth.items()}
        scores = {e: list(np.linspace(0.1, 0.9, spec.frames)) for e in masks}
        stored = (
            {e: quantize_probs(m * np.float32(0.8) + np.float32(0.1)) for e, m in masks.items()}
            if probs
            else None
        )
        writer.write_video(
            dataset.video(spec.id), VideoResult(masks=masks, scores=scores, probs=stored)
        )
    writer.finalize()
    print(f"  built {out.name}", flush=True)


def _node(root: Path, dataset: Dataset, node: str) -> None:
    inputs, config = NODES[node]
    run_vote([Run(root / "work" / name) for name in inputs], dataset, config, root / "work" / node)


def _floor(root: Path, dataset: Dataset, node: str) -> None:
    """Decode the node's inputs and encode + write its outputs; nothing else."""
    inputs, config = NODES[node]
    out = root / "floor" / node
    for video in dataset:
        for members in groups(video.exp_ids, config.grouping):
            for exp_id in members:
                (out / video.id / exp_id).mkdir(parents=True, exist_ok=True)
            sources = inputs if len(members) == 2 or config.unpaired != "reference" else inputs[:1]
            for frame in video.frames:
                paths = [
                    root / "work" / s / "Annotations" / video.id / e / f"{frame}.png"
                    for s in sources for e in members
                ]  # fmt: skip
                decoded = [png_pixels(path.read_bytes(), path) for path in paths]
                data = encode_mask_png(decoded[0] > 127)
                for exp_id in members:
                    (out / video.id / exp_id / f"{frame}.png").write_bytes(data)


def _submission(root: Path, dataset: Dataset, _: str) -> None:
    write_submission(
        Run(root / "work" / RECIPE.submission), dataset, root / "work" / "submission.zip"
    )


def _submission_floor(root: Path, dataset: Dataset, _: str) -> None:
    """Read and decode every PNG of the submitted node and store it in a zip."""
    import zipfile

    (root / "floor").mkdir(exist_ok=True)
    with zipfile.ZipFile(root / "floor" / "submission.zip", "w") as archive:
        for video in dataset:
            for exp_id in video.exp_ids:
                for frame in video.frames:
                    data = (
                        root
                        / "work"
                        / RECIPE.submission
                        / "Annotations"
                        / video.id
                        / exp_id
                        / f"{frame}.png"
                    ).read_bytes()
                    png_pixels(data, Path(video.id, exp_id, frame))
                    archive.writestr(f"Annotations/{video.id}/{exp_id}/{frame}.png", data)


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


JOBS = {
    "node": _node,
    "floor": _floor,
    "submission": _submission,
    "submission_floor": _submission_floor,
}


def _measure(job: str, root: Path, node: str, queue) -> None:
    cv2.setNumThreads(1)
    keep_freed_memory()  # as every command-line tool does (rvos_core.cli.run_main)
    dataset = open_dataset("refytvos", root / "data", "valid")
    # both write into a fresh folder: creating files costs more than overwriting them
    shutil.rmtree(root / ("work" if job == "node" else "floor") / node, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    JOBS[job](root, dataset, node)
    queue.put((time.perf_counter() - start, time.process_time() - cpu, peak_rss_mib()))


def measure(job: str, root: Path, repeat: int, node: str = "") -> tuple[float, float, float]:
    """(best wall seconds, best CPU seconds, peak MiB) of a job over ``repeat`` fresh processes."""
    context = get_context("spawn")
    results = []
    for _ in range(repeat):
        queue = context.Queue()
        process = context.Process(target=_measure, args=(job, root, node, queue))
        process.start()
        results.append(queue.get())
        process.join()
    return min(r[0] for r in results), min(r[1] for r in results), max(r[2] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=25)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rvos-bench-fusion"))
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/charts.py)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    root = args.workdir / f"{args.videos}x{args.frames}"
    print(
        f"building inputs under {root} ({args.videos} videos x 4 expressions x {args.frames} frames, 720p)"
    )
    dataset = build(root, args.videos, args.frames)
    masks = sum(len(v.exp_ids) * len(v.frames) for v in dataset)
    rows = []
    for node in NODES:
        wall, cpu, peak = measure("node", root, args.repeat, node)
        floor_wall, floor_cpu, _ = measure("floor", root, args.repeat, node)
        rows.append((node, wall, floor_wall, cpu, floor_cpu, peak))
    wall, cpu, peak = measure("submission", root, args.repeat)
    floor_wall, floor_cpu, _ = measure("submission_floor", root, args.repeat)
    rows.append(("submission", wall, floor_wall, cpu, floor_cpu, peak))
    print(
        f"\n{'node':<18}{'wall s':>8}{'floor':>8}{'cpu s':>8}{'floor':>8}{'cpu ratio':>10}{'ms/mask':>9}{'peak MiB':>10}"
    )
    for name, wall, floor_wall, cpu, floor_cpu, peak in rows:
        print(
            f"{name:<18}{wall:>8.2f}{floor_wall:>8.2f}{cpu:>8.2f}{floor_cpu:>8.2f}{cpu / floor_cpu:>10.2f}{1e3 * wall / masks:>9.2f}{peak:>10.0f}"
        )
    print(
        "target: every node within 1.3x of its floor (CPU time: robust on a shared machine); peak memory flat in N"
    )
    keys = ("wall_s", "floor_wall_s", "cpu_s", "floor_cpu_s", "peak_mib")
    summary = {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}
    result = {
        "videos": args.videos,
        "frames": args.frames,
        "masks_per_node": masks,
        "nodes": summary,
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "fusion", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
