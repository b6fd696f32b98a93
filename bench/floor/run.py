"""Ours against the floor for every stage of the recipe that reads or writes run folders.

On generated inputs, in one run, each stage's command in its own process:

* **import**: ``python -m rvos_fusion split-pth`` of three upstream-style ``.pth`` dicts of float32
  logits (bench/import/run.py's: N videos x E expressions x T frames at 720x1280, a
  Ref-YouTube-VOS-style "test" split, here with its JPEG frames), one command each;
* **vote**: the default recipe's round-1 vote ``soc_mutr_referft`` of the three imports;
* **submission**: the vote's zip;
* **evaluation**: ``python -m rvos_eval --dataset davis`` on bench/eval/end_to_end.py's
  DAVIS-2017-style set (S sequences x F frames at 720x1280: the Ref-YouTube-VOS split has no
  offline ground truth);
* **report**: ``python -m rvos_report`` of the vote and its three inputs against the ground truth.

**CPU s** of a command: user + system of its process and its children, the best of ``--repeat``
turns (ours and the floor take turns). Every stage runs twice: on the inputs above and on the same inputs cut to **one video**
(one DAVIS sequence for the evaluation). The **per-unit** cost (import, vote, submission: per
output mask; evaluation: per evaluated frame; report: per mask of every node it reads) is the
difference of the two runs divided by the difference of their units: what one more mask costs,
the same on the floor's side. What a command costs whatever its size (interpreter, imports,
argument parsing, opening and closing its run folder) is the **fixed** cost per command, the
intercept; the **start-up** column is the same command with ``-h`` (interpreter, imports, parser;
best of three), part of it. **Floor** (best of ``--repeat``): in
this process, CPU time around the input and output alone: every tensor read once through the
memory map; every input PNG decoded (``rvos_core.masks.png_pixels``: zlib-ng, as our readers; no
value checks); our own outputs written again from their decoded values with our encoders (mask
PNGs: each distinct mask encoded once, as the vote encodes a pair's mask once; probability h5
datasets), every other output file (JSON, CSV, zip, the report's pages, images and videos) written
as bytes. The report's floor leaves out its rendering: decoding the video frames it shows, drawing
tiles, encoding images and videos. Outputs of earlier turns are moved aside, not deleted, until
the end (``bench_import.discard``).

    python bench/floor/run.py [--videos 5] [--expressions 4] [--frames 20] [--repeat 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2

from rvos_core.allocator import keep_freed_memory
from rvos_core.data import open_dataset
from rvos_core.masks import encode_mask_png, png_pixels, read_mask_png
from rvos_core.runfolder import open_probs_file, write_probs_dataset
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos
from rvos_core.torchfile import read_torch_file, release_pages

BENCH = Path(__file__).resolve().parent.parent
VOTE = "soc_mutr_referft"  # the default recipe's round-1 vote of the three models
VOTE_RULE = ["--min-votes", "3", "--grouping", "pairs", "--unpaired", "reference"]
DAVIS_SIZE = (720, 1280)


def bench_module(name: str, relative: str) -> ModuleType:
    """Another benchmark script of bench/, loaded from its file as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCH / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


IMPORT = bench_module("bench_import", "import/run.py")
EVAL = bench_module("bench_eval_end_to_end", "eval/end_to_end.py")


@dataclass(frozen=True)
class Stage:
    """One row: its commands (argv after the interpreter), their start-up command, what it reads,
    what it writes, how many units (masks or frames) its per-unit cost divides by."""

    name: str
    commands: Sequence[Sequence[str]]
    start: Sequence[str]
    reads: Sequence[Path]
    writes: Sequence[Path]
    units: int
    unit: str = "mask"


@dataclass(frozen=True)
class Turns:
    """A stage measured on one input size: CPU seconds of ours (all its commands) and of its
    floor, the best of the turns each, and the peak RSS of its commands."""

    ours: float
    floor: float
    peak_mib: float


@dataclass(frozen=True)
class Row:
    """A stage measured on the large and the small inputs, and its start-up."""

    stage: Stage
    small: Stage
    large_cpu: Turns
    small_cpu: Turns
    start: float

    @property
    def added_units(self) -> int:
        return self.stage.units - self.small.units

    @property
    def ours_per_unit_ms(self) -> float:
        return 1e3 * (self.large_cpu.ours - self.small_cpu.ours) / self.added_units

    @property
    def floor_per_unit_ms(self) -> float:
        return 1e3 * (self.large_cpu.floor - self.small_cpu.floor) / self.added_units

    @property
    def fixed(self) -> float:
        """CPU seconds a command costs whatever its size (the intercept), start-up included."""
        small = self.small_cpu.ours - 1e-3 * self.ours_per_unit_ms * self.small.units
        return small / len(self.stage.commands)


def build(root: Path, videos: int, expressions: int, frames: int) -> Path:
    """The split (meta, JPEG frames), the three dicts (bench/import/run.py's, cached) and the
    ground-truth masks; returns the data root."""
    IMPORT.build(root, videos, expressions, frames)
    specs = [VideoSpec(f"v{i:04d}", expressions, frames, IMPORT.SIZE) for i in range(videos)]
    data = root / "data"
    if not (data / "refer_youtube_vos" / IMPORT.SPLIT / "JPEGImages").is_dir():
        write_refytvos(data, IMPORT.SPLIT, specs)
    for spec in specs:
        for exp_id, masks in expression_masks(spec).items():
            folder = root / "truth" / spec.id / exp_id
            folder.mkdir(parents=True, exist_ok=True)
            for name, mask in zip(spec.frame_names, masks, strict=True):
                (folder / f"{name}.png").write_bytes(encode_mask_png(mask))
    return data


def stages(root: Path, data: Path, masks: int, davis: Path, frames: int) -> list[Stage]:
    """The five stages on the inputs under ``root`` (chain) and ``davis`` (evaluation)."""
    work, split = root / "work", ["--data", str(data), "--split", IMPORT.SPLIT]
    fusion = ["-m", "rvos_fusion"]
    runs = [work / m for m in IMPORT.MODELS]
    imports = [
        [*fusion, "split-pth", str(root / "pth" / f"{m}.pth"), "--domain", "logit", "--out", str(work / m), *split]
        for m in IMPORT.MODELS
    ]  # fmt: skip
    vote = [*fusion, "vote", *map(str, runs), "--out", str(work / VOTE), *VOTE_RULE]
    vote += ["--key-frames-from", "0", "--workers", "1", *split]
    zip_file = root / "submission.zip"
    submission = [*fusion, "submission", str(work / VOTE), "--out", str(zip_file), *split]
    evaluate = ["-m", "rvos_eval", str(davis / "pred"), "--dataset", "davis"]
    evaluate += ["--data", str(davis / "DAVIS"), "--split", EVAL.SPLIT, "--out", str(davis / "out")]
    nodes = [VOTE, *IMPORT.MODELS]
    report = ["-m", "rvos_report", *nodes, "--work", str(work), "--out", str(root / "report")]
    report += ["--truth", str(root / "truth"), "--recipe", "lsvos2023", "--workers", "1", *split]
    annotations = [work / n / "Annotations" for n in nodes]
    davis_reads = [davis / "DAVIS" / "Annotations", davis / "pred"]
    return [
        Stage("import", imports, [*fusion, "split-pth", "-h"], [root / "pth"], runs, 3 * masks),
        Stage("vote", [vote], [*fusion, "vote", "-h"], [r / "Annotations" for r in runs], [work / VOTE], masks),
        Stage("submission", [submission], [*fusion, "submission", "-h"], [work / VOTE / "Annotations"], [zip_file], masks),
        Stage("evaluation", [evaluate], ["-m", "rvos_eval", "-h"], davis_reads, [davis / "out"], frames, "frame"),
        Stage("report", [report], ["-m", "rvos_report", "-h"], [*annotations, root / "truth"], [root / "report"], 5 * masks, "mask read"),
    ]  # fmt: skip


def read_tensors(path: Path) -> None:
    """Every tensor [T, H, W] of an upstream dict read once through the memory map."""
    for entry in read_torch_file(path).values():
        for item in entry.values():
            for frame in item["mask_logits"]:
                frame.max()
            release_pages(item["mask_logits"])


def read_inputs(paths: Iterable[Path]) -> None:
    """Read every file under ``paths``: .pth tensors, PNGs inflated, other files' bytes."""
    for top in paths:
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if path.suffix == ".pth":
                read_tensors(path)
            elif path.suffix == ".png":
                png_pixels(path.read_bytes(), path)
            elif path.is_file():
                path.read_bytes()


class Clock:
    """CPU seconds spent inside ``timed`` calls."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, work: Callable[..., object], *args: object) -> object:
        start = time.process_time()
        result = work(*args)
        self.seconds += time.process_time() - start
        return result


def write_file(source: Path, target: Path, clock: Clock, encoded: dict[bytes, bytes]) -> None:
    """Write ``target`` as the stage wrote ``source``: a mask PNG encoded again from its pixels
    (once per distinct mask), anything else as its bytes (read untimed)."""
    data = source.read_bytes()
    if source.suffix == ".png" and "Annotations" in source.parts and data not in encoded:
        mask = read_mask_png(source)
        encoded[data] = clock.timed(encode_mask_png, mask)  # type: ignore[assignment]
    clock.timed(target.write_bytes, encoded.get(data, data))


def write_probs(source: Path, target: Path, clock: Clock) -> None:
    """Write an h5 of stored probabilities again with our writer (values read untimed)."""
    import h5py

    with h5py.File(source, "r") as h5:
        probs = {name: h5[name][()] for name in h5}
    out = clock.timed(open_probs_file, target)
    for name, values in probs.items():
        clock.timed(write_probs_dataset, out, name, values)
    clock.timed(out.close)  # type: ignore[attr-defined]


def write_outputs(outputs: Iterable[Path], floor: Path, clock: Clock) -> None:
    """Write everything under ``outputs`` again below ``floor`` (see write_file)."""
    encoded: dict[bytes, bytes] = {}
    for top in outputs:
        for source in sorted(top.rglob("*")) if top.is_dir() else [top]:
            if not source.is_file():
                continue
            target = floor / top.name / source.relative_to(top)
            clock.timed(target.parent.mkdir, 0o777, True, True)
            if source.suffix == ".h5":
                write_probs(source, target, clock)
            else:
                write_file(source, target, clock, encoded)


def floor_cpu(stage: Stage, floor: Path) -> float:
    """CPU seconds of the stage's floor: reading its inputs and writing its outputs alone."""
    IMPORT.discard(floor)
    clock = Clock()
    clock.timed(read_inputs, stage.reads)
    write_outputs(stage.writes, floor, clock)
    return clock.seconds


def run_commands(stage: Stage) -> tuple[float, float]:
    """(CPU seconds, peak MiB) of the stage's commands, run on fresh outputs."""
    for path in stage.writes:
        IMPORT.discard(path)
    runs = [IMPORT.measured([sys.executable, *command]) for command in stage.commands]
    return sum(r[0] for r in runs), max(r[1] for r in runs)


def turns(stage: Stage, root: Path, repeat: int) -> Turns:
    """The stage's commands and its floor on one input size, taking turns (so that both meet the
    same load), each the best of ``repeat`` turns."""
    ours, floors = [], []
    for _ in range(repeat):
        ours.append(run_commands(stage))
        floors.append(floor_cpu(stage, root / "floor-stages" / stage.name))
    best = min(ours)
    return Turns(best[0], min(floors), best[1])


def measure(large: tuple[Stage, Path], small: tuple[Stage, Path], repeat: int) -> Row:
    """A stage on the large and the small inputs, and its start-up (best of three)."""
    start = min(IMPORT.measured([sys.executable, *large[0].start])[0] for _ in range(3))
    return Row(large[0], small[0], turns(*large, repeat), turns(*small, repeat), start)


def print_table(rows: Sequence[Row]) -> None:
    """The table of README's "ours vs floor" section."""
    print(
        "| stage | commands | units (large / small) | start-up CPU s | fixed CPU s "
        "| ours CPU s (large / small) | ours ms / unit | floor CPU s (large / small) "
        "| floor ms / unit | ours / floor per unit | peak RSS MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        s, big, small = r.stage, r.large_cpu, r.small_cpu
        print(
            f"| {s.name} | {len(s.commands)} | {s.units} / {r.small.units} {s.unit}s "
            f"| {r.start:.2f} | {r.fixed:.2f} | {big.ours:.2f} / {small.ours:.2f} "
            f"| {r.ours_per_unit_ms:.2f} | {big.floor:.2f} / {small.floor:.2f} "
            f"| {r.floor_per_unit_ms:.2f} | {r.ours_per_unit_ms / r.floor_per_unit_ms:.2f}x "
            f"| {big.peak_mib:.0f} |"
        )


def summary(rows: Sequence[Row], args: argparse.Namespace) -> dict[str, object]:
    """The figures as JSON (bench/charts.py draws them)."""
    return {
        "benchmark": "floor",
        "inputs": f"{args.videos} videos x {args.expressions} expressions x {args.frames} frames, "
        f"720p; DAVIS {args.sequences} x {args.davis_frames}",
        "stages": {
            r.stage.name: {
                "unit": r.stage.unit,
                "units": r.stage.units,
                "small_units": r.small.units,
                "commands": len(r.stage.commands),
                "cpu_s": r.large_cpu.ours,
                "small_cpu_s": r.small_cpu.ours,
                "start_s": r.start,
                "fixed_s": r.fixed,
                "floor_cpu_s": r.large_cpu.floor,
                "small_floor_cpu_s": r.small_cpu.floor,
                "ms_per_unit": r.ours_per_unit_ms,
                "floor_ms_per_unit": r.floor_per_unit_ms,
                "peak_mib": r.large_cpu.peak_mib,
            }
            for r in rows
        },
    }


def inputs(
    workdir: Path, videos: int, sequences: int, args: argparse.Namespace
) -> list[tuple[Stage, Path]]:
    """The stages (with their root) on ``videos`` videos of the split and ``sequences`` DAVIS
    sequences, their inputs made when missing."""
    root = workdir / f"{videos}x{args.expressions}x{args.frames}"
    root.mkdir(parents=True, exist_ok=True)
    data = build(root, videos, args.expressions, args.frames)
    masks = sum(
        len(v.exp_ids) * len(v.frames) for v in open_dataset("refytvos", data, IMPORT.SPLIT)
    )
    davis = root / f"davis-{sequences}x{args.davis_frames}"
    if not (davis / "pred").is_dir():
        EVAL.write_set(davis, DAVIS_SIZE, sequences, args.davis_frames, 0)
    frames = sequences * (args.davis_frames - 2)
    return [(stage, root) for stage in stages(root, data, masks, davis, frames)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=5)
    parser.add_argument("--expressions", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--sequences", type=int, default=6, help="DAVIS-style sequences")
    parser.add_argument("--davis-frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many turns")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rvos-bench-import"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/charts.py)")
    args = parser.parse_args()
    keep_freed_memory()
    cv2.setNumThreads(1)
    sizes = [
        inputs(args.workdir, videos, sequences, args)
        for videos, sequences in ((args.videos, args.sequences), (1, 1))
    ]
    try:
        rows = [measure(*pair, args.repeat) for pair in zip(*sizes, strict=True)]
    finally:
        IMPORT.empty_discarded()
    print_table(rows)
    result = summary(rows, args)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
