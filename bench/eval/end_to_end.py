"""Evaluation end to end: the official DAVIS-2017 CLI against ``python -m rvos_eval``, CPU seconds.

Writes a DAVIS-2017-style semi-supervised set (``--sequences`` x ``--frames`` indexed PNGs, 1-3
objects per sequence, the masks of ``run.py``'s ``large`` model, predictions with ids 1..N) at
480x854 and 720x1280 (``--sizes``; both in ``Annotations/480p``, where both tools look), then
runs each command as a child process and reads its CPU time (user + system, ``resource.getrusage``
of the children, the pool's workers included) and its wall time:

* **official** (with ``--official``): ``evaluation_method.py --task semi-supervised`` of
  davis2017-evaluation (a local copy outside this repository, commit ac7c43f) under
  ``--official-python`` (a venv with its requirements);
* **ours**: ``python -m rvos_eval PRED --dataset davis`` at the default ``--workers`` and at each of
  ``--workers-list``;
* **floor**: decoding every PNG the evaluation reads (ground truth and predictions) once, nothing
  else, with our reader (``rvos_eval.readers.read_index_png``) and with Pillow (as the official
  code reads them).

Start-up (the interpreter, the imports and the argument parsing, no frame read) is measured apart
for each as its own child process; "per frame" is (total - start-up) / evaluated frames. Best of
``--repeat``, the commands taking turns. The J&F numbers must be identical: the official code is run
once more in-process (``DAVISEvaluation``, full precision) and compared with our per_object.csv.

    python bench/eval/end_to_end.py --official /tmp/davis2017-evaluation \
        --official-python /tmp/davis-venv/bin/python [--sequences 6] [--frames 30] [--repeat 3]
    python bench/eval/end_to_end.py --sequences 30      # ours only: the worker break-even
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import SIZES, blob, cpu_name, predict

SPLIT = "val"
PALETTE = [v for i in range(256) for v in (i, (97 * i) % 256, (53 * i) % 256)]
FLOOR_START = {
    "ours": "import sys, pathlib\nfrom rvos_eval.readers import read_index_png as read\n"
    "from rvos_core.allocator import keep_freed_memory\nkeep_freed_memory()",
    "Pillow": "import sys, pathlib, numpy, PIL.Image\nread = lambda p: numpy.asarray(PIL.Image.open(p))",
}
FLOOR_LOOP = """
for folder in sys.argv[1:]:
    for path in sorted(pathlib.Path(folder).glob("*/*.png")):
        read(path)
"""
OFFICIAL_START = """
import argparse, os, sys, numpy, pandas
from davis2017.evaluation import DAVISEvaluation
"""
OFFICIAL_NUMBERS = """
import json, sys
from davis2017.evaluation import DAVISEvaluation
res = DAVISEvaluation(sys.argv[1], "semi-supervised", sys.argv[3]).evaluate(sys.argv[2])
print(json.dumps({k: [list(res[k]["M_per_object"].items()), res[k]["R"], res[k]["D"]] for k in "JF"}))
"""
OURS_START = """
from rvos_core.allocator import keep_freed_memory
from rvos_eval.cli import build_parser
keep_freed_memory()
build_parser().parse_args(["x", "--dataset", "davis", "--out", "y"])
"""


def object_labels(
    shape: tuple[int, int], frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Truth and prediction labels uint8 [T, H, W] of one sequence (ids 1..N, later ids on top)."""
    dims = np.array(shape, dtype=np.float64)
    truth = np.zeros((frames, *shape), np.uint8)
    pred = np.zeros_like(truth)
    for k in range(1, int(rng.integers(1, 4)) + 1):
        radii = rng.uniform(0.05, 0.3) * dims * rng.uniform(0.6, 1.4, 2)
        centre, speed = rng.uniform(0.2, 0.8, 2) * dims, rng.uniform(-0.006, 0.006, 2) * dims
        phase = rng.uniform(0, 6)
        for t in range(frames):
            mask = blob(shape, centre + t * speed, radii, phase + 0.05 * t)
            truth[t][mask] = k
            pred[t][predict(mask, rng)] = k
    return truth, pred


def write_indexed(path: Path, labels: np.ndarray) -> None:
    """A palette PNG of labels uint8 [H, W], as DAVIS ships its annotations."""
    image = Image.fromarray(labels, mode="P")
    image.putpalette(PALETTE)
    image.save(path)


def write_set(root: Path, shape: tuple[int, int], sequences: int, frames: int, seed: int) -> Path:
    """DAVIS folder at ``root/DAVIS`` (ImageSets, Annotations/480p, empty JPEGImages files the
    official reader lists but never opens) and predictions at ``root/pred``; returns root/pred."""
    davis, results = root / "DAVIS", root / "pred"
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    names = [f"seq{i:02d}" for i in range(sequences)]
    (davis / "ImageSets" / "2017" / f"{SPLIT}.txt").write_text("\n".join(names) + "\n")
    rng = np.random.default_rng([seed, shape[0]])
    for name in names:
        truth, pred = object_labels(shape, frames, rng)
        folders = [davis / d / "480p" / name for d in ("Annotations", "JPEGImages")]
        for folder in (*folders, results / name):
            folder.mkdir(parents=True)
        for t in range(frames):
            write_indexed(folders[0] / f"{t:05d}.png", truth[t])
            (folders[1] / f"{t:05d}.jpg").touch()
            if 0 < t < frames - 1:
                write_indexed(results / name / f"{t:05d}.png", pred[t])
    return results


def child_cpu(command: Sequence[str], cwd: Path | None = None) -> tuple[float, float]:
    """CPU seconds (user + system) of ``command`` and its children, run to completion, and the
    wall seconds it took."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


@dataclass
class Contender:
    """A command and its start-up command (same interpreter, imports and parsing only)."""

    name: str
    command: list[str]
    startup: list[str]
    cwd: Path | None = None
    cleanup: tuple[Path, ...] = ()

    def run(self) -> tuple[float, float]:
        for path in self.cleanup:
            path.unlink(missing_ok=True)
        return child_cpu(self.command, self.cwd)

    def start(self) -> float:
        return child_cpu(self.startup, self.cwd)[0]


@dataclass
class Best:
    """Best CPU seconds of the command and of its start-up, best wall seconds of the command."""

    cpu: float = float("inf")
    start: float = float("inf")
    wall: float = float("inf")

    def add(self, contender: Contender) -> None:
        cpu, wall = contender.run()
        self.cpu, self.wall = min(self.cpu, cpu), min(self.wall, wall)
        self.start = min(self.start, contender.start())


def official_contender(args: argparse.Namespace, davis: Path, results: Path) -> Contender:
    """evaluation_method.py (its CSVs removed before each run: it would reuse them)."""
    command = [str(args.official_python), "evaluation_method.py", "--task", "semi-supervised"]
    command += ["--davis_path", str(davis), "--results_path", str(results)]
    csvs = tuple(results / f"{kind}_results-{SPLIT}.csv" for kind in ("global", "per-sequence"))
    start = [str(args.official_python), "-c", OFFICIAL_START]
    return Contender("official", command, start, args.official, csvs)


def contenders(args: argparse.Namespace, root: Path, results: Path) -> list[Contender]:
    """The official CLI (with --official), ours at the default and at each --workers-list count,
    the floors."""
    davis, out = root / "DAVIS", root / "out"
    ours = [sys.executable, "-m", "rvos_eval", str(results), "--dataset", "davis"]
    ours += ["--data", str(davis), "--split", SPLIT, "--out", str(out)]
    ours_start = [sys.executable, "-c", OURS_START]
    found = [official_contender(args, davis, results)] if args.official else []
    found.append(Contender("ours (default workers)", ours, ours_start))
    for workers in args.workers_list:
        command = [*ours, "--workers", str(workers)]
        found.append(Contender(f"ours --workers {workers}", command, ours_start))
    floor_dirs = [str(davis / "Annotations" / "480p"), str(results)]
    for reader, start in FLOOR_START.items():
        command = [sys.executable, "-c", start + FLOOR_LOOP, *floor_dirs]
        found.append(Contender(f"floor: {reader} decode", command, [sys.executable, "-c", start]))
    return found


def best_of(contenders: list[Contender], repeat: int) -> dict[str, Best]:
    """Best times of each contender over ``repeat`` rounds (taking turns)."""
    best = {c.name: Best() for c in contenders}
    for _ in range(repeat):
        for c in contenders:
            best[c.name].add(c)
    return best


def official_numbers(args: argparse.Namespace, root: Path, results: Path) -> dict[str, object]:
    """The official per-object J and F means, recalls and decays at full precision."""
    command = [str(args.official_python), "-c", OFFICIAL_NUMBERS, str(root / "DAVIS"), str(results)]
    command.append(SPLIT)
    done = subprocess.run(command, cwd=args.official, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def same_numbers(official: dict[str, object], per_object: Path) -> bool:
    """Our per_object.csv equals the official per-object J, F (mean, recall, decay) exactly."""
    with per_object.open() as f:
        rows = list(csv.DictReader(f))
    for key in "JF":
        means, recalls, decays = official[key]  # type: ignore[misc]
        ours = [(r["object"], float(r[f"{key}-Mean"])) for r in rows]
        if ours != [(n, float(m)) for n, m in means]:
            return False
        if [float(r[f"{key}-Recall"]) for r in rows] != recalls:
            return False
        if [float(r[f"{key}-Decay"]) for r in rows] != decays:
            return False
    return True


def report(shape: tuple[int, int], frames: int, best: dict[str, Best]) -> None:
    """One line per contender: CPU, start-up, per frame, wall, gain over the official CLI."""
    print(f"{shape[0]}x{shape[1]}: {frames} evaluated frames")
    header = ("CPU s", "start s", "ms/frame", "wall s", "vs official")
    print(f"  {'':24} " + " ".join(f"{h:>11}" for h in header))
    official = best["official"].cpu if "official" in best else math.nan
    for name, b in best.items():
        per_frame = 1e3 * (b.cpu - b.start) / frames
        values = (b.cpu, b.start, per_frame, b.wall)
        line = " ".join(f"{v:11.3f}" for v in values)
        print(f"  {name:24} {line} {official / b.cpu:10.1f}x")


def measure(args: argparse.Namespace, shape: tuple[int, int]) -> None:
    """Write the set of one frame size, time every contender, check the numbers."""
    with tempfile.TemporaryDirectory(prefix="rvos-e2e-") as tmp:
        root = Path(tmp)
        results = write_set(root, shape, args.sequences, args.frames, args.seed)
        best = best_of(contenders(args, root, results), args.repeat)
        report(shape, args.sequences * (args.frames - 2), best)
        if args.official:
            official = official_numbers(args, root, results)
            same = same_numbers(official, root / "out" / "per_object.csv")
            print(f"  J and F identical to the official code: {same}")
            assert same, "J or F differ from the official code"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, help="davis2017-evaluation folder (a local copy)")
    parser.add_argument("--official-python", type=Path, help="an interpreter with its requirements")
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers-list", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--sizes", choices=("480p", "720p"), nargs="+", default=["480p", "720p"])
    args = parser.parse_args()
    if args.official and not args.official_python:
        parser.error("--official needs --official-python")
    print(f"CPU: {cpu_name()}; Python {sys.version.split()[0]}")
    for shape in SIZES:
        if f"{shape[0]}p" in args.sizes:
            measure(args, shape)


if __name__ == "__main__":
    main()
