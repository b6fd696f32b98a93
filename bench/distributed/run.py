"""The demo's Make chain locally and on Ray (EXECUTOR=ray), and Ray's scheduling cost per video.

::

    python bench/distributed/run.py [--out DIR] [--items 200]

1. ``demo/simulated.py prepare`` writes the demo world once; each configuration gets a copy of it and
   runs ``make submission`` on it (the demo's chain: round-1 votes, the stand-in propagations,
   round-2 votes, the zip): local (one process per stage), then Ray with ``RAY_WORKERS`` = 1 and 2
   on one local Ray of 2 CPUs started here (each stage connects to it through ``RAY_ADDRESS``),
   and with 2 workers under ``make -j2`` (independent stages at once, sharing the cluster).
   The stand-in propagations (a script's stage, as in ``make demo``) run locally in all three.
   Every configuration must give the bytes of the local run (checked; the zip excluded, whose
   entries carry times).
2. One vote stage (``rvos_fusion.vote``, 3 runs) over a generated 720p split of ``--videos``
   videos of 10 to 39 frames x 4 expressions (the inputs: the true masks shifted), in this process: local with 1 and 2 worker processes, Ray with 1 and 2 workers (their
   start included); same bytes checked.
3. The scheduling cost: no-op items through one Ray worker, ``--items`` and 10 of them (best of
   3 each); the difference of the walls over the difference of the counts is what the driver,
   the queue and the round trip cost per video.

Wall times on a shared machine; the figures in bench/README.md say which.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import ray

from rvos_core.data import Dataset, open_dataset
from rvos_core.parallel import given
from rvos_core.ray_pool import map_on_ray
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos
from rvos_core.testing import tree_digest
from rvos_core.work import Work
from rvos_fusion.vote import VoteConfig, run_vote

ROOT = Path(__file__).resolve().parents[2]
SIZE = (720, 1280)
CONFIGS = {"local": {"EXECUTOR": "local"}, "ray, 1 worker": {"EXECUTOR": "ray", "RAY_WORKERS": "1"}}
CONFIGS["ray, 2 workers"] = {"EXECUTOR": "ray", "RAY_WORKERS": "2"}
CONFIGS["ray, 2 workers, make -j2"] = {**CONFIGS["ray, 2 workers"], "MAKEFLAGS": "-j2"}


def prepare(world: Path) -> None:
    """The demo world (data, truth, simulated model runs) under ``world``."""
    command = [sys.executable, str(ROOT / "demo" / "simulated.py"), "prepare", "--out", str(world)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def run_chain(world: Path, env: dict[str, str]) -> float:
    """``make submission`` of the demo on ``world``; its wall time in seconds."""
    propagate = f"EXECUTOR=local {sys.executable} {ROOT / 'demo' / 'simulated.py'} propagate"
    command = ["make", "-s", "-f", str(ROOT / "Makefile"), "submission", f"DATA={world}/data"]
    command += [f"WORK={world}/work", "SPLIT=valid", f"PROPAGATE={propagate}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def digest(world: Path) -> str:
    """The bytes of every node of the chain but the zip."""
    copy = world / "compare"
    shutil.copytree(world / "work" / "valid", copy, ignore=shutil.ignore_patterns("*.zip"))
    return tree_digest(copy)


def chains(base: Path, address: str) -> dict[str, float]:
    """Wall time of the chain per configuration; every run checked against the local bytes."""
    prepare(base / "world")
    times, expected = {}, None
    for name, settings in CONFIGS.items():
        world = base / name.replace(", ", "-").replace(" ", "")
        shutil.copytree(base / "world", world)
        env = {**os.environ, **settings, "RAY_ADDRESS": address, "RVOS_PROGRESS": "0"}
        times[name] = run_chain(world, env)
        found = digest(world)
        expected = expected or found
        assert found == expected, f"{name}: other bytes than the local run"
    return times


def write_input_run(out: Path, dataset: Dataset, specs: list[VideoSpec], shift: int) -> Run:
    """A complete run of the split's true masks shifted by ``shift`` pixels, rising scores."""
    meta = {"producer": "bench", "value_domain": "binary", "has_scores": True, "has_probs": False}
    writer = RunWriter(out, dataset, meta)
    for spec in specs:
        masks = {e: np.roll(m, shift, axis=2) for e, m in expression_masks(spec).items()}
        scores = {e: np.linspace(0.1, 0.9, spec.frames).tolist() for e in masks}
        writer.write_video(dataset.video(spec.id), VideoResult(masks=masks, scores=scores))
    assert writer.finalize()
    return Run(out)


def vote_world(root: Path, videos: int) -> tuple[Dataset, list[Run]]:
    """A 720p split of ``videos`` videos of 10..39 frames and 3 runs to vote."""
    specs = [VideoSpec(f"v{i:03d}", 4, 10 + (7 * i) % 30, SIZE) for i in range(videos)]
    write_refytvos(root / "data", "valid", specs, frames=False)
    dataset = open_dataset("refytvos", root / "data", "valid")
    return dataset, [write_input_run(root / f"run{k}", dataset, specs, 4 * k - 4) for k in range(3)]


def votes(root: Path, videos: int) -> dict[str, float]:
    """Wall time of one vote stage per configuration; the bytes checked against the first."""
    dataset, runs = vote_world(root, videos)
    config = VoteConfig(min_votes=3, unpaired=2.0, key_frames_from=0)
    times, expected = {}, None
    for name, executor, workers in (
        ("local, 1 process", "local", 1),
        ("local, 2 processes", "local", 2),
        ("ray, 1 worker", "ray", 1),
        ("ray, 2 workers", "ray", 2),
    ):
        os.environ.update(EXECUTOR=executor, RAY_WORKERS=str(workers))
        out = root / name.replace(", ", "-").replace(" ", "")
        start = time.perf_counter()
        run_vote(runs, dataset, config, out, workers=workers)
        times[name] = time.perf_counter() - start
        expected = expected or tree_digest(out)
        assert tree_digest(out) == expected, f"{name}: other bytes than the first"
    return times


def noop(item: int) -> int:
    return item


def per_item_cost(items: int) -> float:
    """Seconds per item that one Ray worker adds to a no-op task (start-up excluded)."""
    os.environ.update(RAY_WORKERS="1")
    walls = []
    for count in (10, items):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            map_on_ray(Work(partial(given, noop), list(range(count)), "noop"))
            best = min(best, time.perf_counter() - start)
        walls.append(best)
    return (walls[1] - walls[0]) / (items - 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--items", type=int, default=1000, help="no-op items of the cost figure")
    parser.add_argument("--videos", type=int, default=12, help="videos of the vote figure")
    parser.add_argument("--skip-chain", action="store_true", help="skip the demo chain figure")
    args = parser.parse_args()
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024)
    print(f"local Ray of 2 CPUs started in {time.perf_counter() - start:.1f} s")
    address = ray.get_runtime_context().gcs_address
    with tempfile.TemporaryDirectory(dir=args.out) as folder:
        for name, wall in ({} if args.skip_chain else chains(Path(folder), address)).items():
            print(f"demo chain (make submission), {name}: {wall:.1f} s wall, same bytes as local")
        for name, wall in votes(Path(folder) / "votes", args.videos).items():
            print(f"one vote, {args.videos} videos at 720p, {name}: {wall:.1f} s wall, same bytes")
    cost = per_item_cost(args.items)
    print(f"Ray scheduling cost: {cost * 1000:.2f} ms per video (one worker, {args.items} no-ops)")
    ray.shutdown()


if __name__ == "__main__":
    main()
