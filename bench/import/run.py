"""Benchmark of the import path: upstream .pth dicts -> round-1 vote, against upstream and a floor.

Builds (once, cached in --workdir) a Ref-YouTube-VOS-style "test" split of N videos x E
expressions x T frames at 720x1280 and three upstream-style per-model dicts (``soc``, ``mutr``,
``referformer_ft``: ``{video: {exp_id: {'mask_logits': float32 [T, H, W], 'class_info': [T]}}}``,
written by ``torch.save``; logits are a blurred +-10 step around the model's shifted truth, plus
noise). Then measures, each command in its own process (CPU seconds and peak RSS of that process):

* **upstream** (``--upstream DIR``, a checkout of RobertLuo1/iccv2023_RVOS_Challenge):
  ``spilt_pth.py`` of the three dicts, then ``soc_test/test_swap_1.py``, copied to the workdir with
  their path constants (and ``device``) replaced, nothing else;
* **ours**: ``python -m rvos_fusion split-pth`` of each dict, then the round-1 vote
  (``python -m rvos_fusion vote``, min 3 votes, pairs, unpaired = reference, one worker);
* **floor**: reading every tensor through the memory map once, and encoding exactly our outputs
  (the masks' PNGs, the probabilities' h5 datasets, the vote's PNGs), timed in one process around
  those steps only (the outputs are decoded from our run folders beforehand, untimed).

Start-up (interpreter and imports: ``python -c "import ..."`` of what each command imports) is
measured on its own and subtracted to give the per-mask cost. The vote's output is compared with
upstream's, PNG for PNG (decoded pixels), when upstream ran.

    python bench/import/run.py [--videos 5] [--expressions 4] [--frames 20] [--upstream DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from rvos_core.allocator import keep_freed_memory
from rvos_core.data import Dataset, Video, open_dataset
from rvos_core.masks import encode_mask_png, read_mask_png
from rvos_core.runfolder import Run, open_probs_file, write_probs_dataset
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos
from rvos_core.torchfile import read_torch_file, release_pages
from rvos_fusion.vote import groups

SIZE = (720, 1280)
MODELS = ("soc", "mutr", "referformer_ft")  # upstream test_swap_1.py's list; soc is the reference
SPLIT = "test"  # test_swap_1.py reads the test meta
OURS_IMPORTS = "import rvos_fusion.cli"
UPSTREAM_IMPORTS = "import torch, tqdm, numpy, PIL.Image"
FLOOR_IMPORTS = "import numpy, cv2, h5py, rvos_core.torchfile, rvos_core.runfolder"
# Child runner: runs argv, prints the child's CPU seconds and peak RSS (its own RUSAGE_CHILDREN).
RUSAGE = (
    "import json, resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(json.dumps([r.ru_utime + r.ru_stime, r.ru_maxrss / 1024]))"
)


def logits_of(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 [T, H, W] logits of bool masks [T, H, W]: a blurred +-10 step plus noise."""
    out = np.empty(masks.shape, np.float32)
    for t, mask in enumerate(masks):
        step = np.where(mask, np.float32(10), np.float32(-10))
        out[t] = cv2.GaussianBlur(step, (0, 0), 4.0)
    out += rng.normal(0.0, 0.3, masks.shape).astype(np.float32)
    return out


def build(root: Path, videos: int, expressions: int, frames: int) -> Dataset:
    """The split's meta and the three models' .pth dicts (skipped when there)."""
    import torch

    specs = [VideoSpec(f"v{i:04d}", expressions, frames, SIZE) for i in range(videos)]
    write_refytvos(root / "data", SPLIT, specs, frames=False)
    (root / "pth").mkdir(exist_ok=True)
    for k, model in enumerate(MODELS):
        path = root / "pth" / f"{model}.pth"
        if path.exists():
            continue
        rng = np.random.default_rng(k)
        whole = {}
        for spec in specs:
            truth = expression_masks(spec)
            whole[spec.id] = {
                e: {
                    "mask_logits": torch.from_numpy(logits_of(np.roll(m, 4 * k - 4, axis=2), rng)),
                    "class_info": rng.random(spec.frames).tolist(),
                }
                for e, m in truth.items()
            }
        torch.save(whole, path)
        print(f"  built {path}", flush=True)
    return open_dataset("refytvos", root / "data", SPLIT)


def measured(argv: Sequence[str]) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of the process ``argv``."""
    done = subprocess.run(
        [sys.executable, "-c", RUSAGE, *argv], check=True, capture_output=True, text=True
    )
    cpu, peak = json.loads(done.stdout.strip().splitlines()[-1])
    return cpu, peak


_DISCARDED: set[Path] = set()


def discard(path: Path) -> None:
    """Move an earlier turn's output aside (a rename) instead of deleting it. On ext4, files made
    right after thousands of deletions cost several times the system CPU (the inode allocator
    steps over recently deleted inodes), which would land on whichever side ran after a deletion;
    ``empty_discarded`` deletes them all once the benchmark is done."""
    if path.exists() or path.is_symlink():
        aside = path.parent / ".discarded"
        aside.mkdir(exist_ok=True)
        _DISCARDED.add(aside)
        path.rename(aside / f"{path.name}-{time.monotonic_ns()}")


def empty_discarded() -> None:
    """Delete what ``discard`` moved aside."""
    for aside in _DISCARDED:
        shutil.rmtree(aside, ignore_errors=True)
    _DISCARDED.clear()


def startup(imports: str) -> float:
    """CPU seconds of an interpreter that only imports ``imports`` (best of 3)."""
    return min(measured([sys.executable, "-c", imports])[0] for _ in range(3))


def run_ours(root: Path) -> list[tuple[str, float, float]]:
    """split-pth of each dict, then the round-1 vote: (command, CPU s, peak MiB) each."""
    data = ["--data", str(root / "data"), "--split", SPLIT]
    work = root / "ours"
    discard(work)
    rows = []
    for model in MODELS:
        pth = str(root / "pth" / f"{model}.pth")
        argv = ["-m", "rvos_fusion", "split-pth", pth, "--domain", "logit"]
        rows.append(
            (
                f"split-pth {model}",
                *measured([sys.executable, *argv, "--out", str(work / model), *data]),
            )
        )
    vote = [
        "-m",
        "rvos_fusion",
        "vote",
        *(str(work / m) for m in MODELS),
        "--out",
        str(work / "vote"),
    ]
    rule = [
        "--min-votes",
        "3",
        "--grouping",
        "pairs",
        "--unpaired",
        "reference",
        "--key-frames-from",
        "0",
    ]
    rows.append(
        ("vote round 1", *measured([sys.executable, *vote, *rule, "--workers", "1", *data]))
    )
    return rows


def _patched(source: Path, target: Path, constants: dict[str, str]) -> Path:
    """Copy an upstream script, replacing the first assignment of each named constant."""
    text = source.read_text()
    for name, value in constants.items():
        text, count = re.subn(
            rf"^(\s*){name} = .*$", rf"\g<1>{name} = {value}", text, count=1, flags=re.M
        )
        if count != 1:
            raise SystemExit(f"{source}: no assignment of {name} to patch")
    target.write_text(text)
    return target


def run_upstream(root: Path, upstream: Path, python: str) -> list[tuple[str, float, float]]:
    """upstream spilt_pth.py + test_swap_1.py, path constants patched: (command, CPU s, peak MiB)."""
    work = root / "upstream"
    discard(work)
    work.mkdir()
    split = _patched(upstream / "spilt_pth.py", work / "spilt_pth.py", {
        "pth_model_dir": repr(str(root / "pth")),
        "output_split_dir": repr(str(work / "split")),
        "model_names": repr(list(MODELS)),
    })  # fmt: skip
    swap = _patched(
        upstream / "soc_test" / "test_swap_1.py", work / "test_swap_1.py", {"device": "'cpu'"}
    )
    args = [
        "--ytvos_path",
        str(root / "data" / "refer_youtube_vos"),
        "--pth_model_path",
        str(work / "split"),
    ]
    return [
        ("spilt_pth.py", *measured([python, str(split)])),
        (
            "test_swap_1.py",
            *measured([python, str(swap), *args, "--output_dir", str(work / "out")]),
        ),
    ]


class _Clock:
    """Sums the CPU seconds spent inside ``timed`` calls."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, work: Callable[..., object], *args: object) -> None:
        start = time.process_time()
        work(*args)
        self.seconds += time.process_time() - start


def _write_pngs(folders: Sequence[Path], video: Video, masks: np.ndarray) -> None:
    """Encode bool masks [T, H, W] as the run folder does, one PNG per frame, written to every
    folder (a vote writes a pair's mask for both expressions)."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for frame, mask in zip(video.frames, masks, strict=True):
        data = encode_mask_png(mask)
        for folder in folders:
            (folder / f"{frame}.png").write_bytes(data)


def _read(values: np.ndarray) -> None:
    """Read a tensor [T, H, W] of the file once (the maximum of each frame)."""
    for frame in values:
        frame.max()


def _floor_model(root: Path, dataset: Dataset, model: str, clock: _Clock) -> None:
    """Read every tensor of one dict once and encode our import's outputs (masks, probs)."""
    tensors = read_torch_file(root / "pth" / f"{model}.pth")
    run = Run(root / "ours" / model)
    out = root / "floor" / model
    for video in dataset:
        (out / "probs").mkdir(parents=True, exist_ok=True)
        h5 = open_probs_file(out / "probs" / f"{video.id}.h5")
        for exp_id in video.exp_ids:
            values = tensors[video.id][exp_id]["mask_logits"]
            probs = run.probs(video, exp_id)  # untimed: the outputs to encode
            clock.timed(_read, values)
            clock.timed(_write_pngs, [out / video.id / exp_id], video, probs >= 128)
            clock.timed(write_probs_dataset, h5, exp_id, probs)
            release_pages(values)
        clock.timed(h5.close)


def _floor_vote(root: Path, dataset: Dataset, clock: _Clock) -> None:
    """Encode our vote's output PNGs (one encoding per expression group and frame)."""
    run = Run(root / "ours" / "vote")
    for video in dataset:
        for members in groups(video.exp_ids, "pairs"):
            masks = run.masks(video, members[0])  # untimed
            folders = [root / "floor" / "vote" / video.id / e for e in members]
            clock.timed(_write_pngs, folders, video, masks)


def floor(root: Path, dataset: Dataset) -> float:
    """CPU seconds of the floor of the whole import path (see the module docstring)."""
    discard(root / "floor")
    clock = _Clock()
    for model in MODELS:
        _floor_model(root, dataset, model, clock)
    _floor_vote(root, dataset, clock)
    return clock.seconds


def vote_reading(root: Path, dataset: Dataset) -> float:
    """CPU seconds of decoding the round-1 vote's input PNGs (its reading of the run folders:
    not part of the floor, reported beside it)."""
    clock = _Clock()
    for video in dataset:
        for members in groups(video.exp_ids, "pairs"):
            sources = MODELS if len(members) == 2 else MODELS[:1]  # unpaired: the reference
            for model in sources:
                for exp_id in members:
                    folder = root / "ours" / model / "Annotations" / video.id / exp_id
                    for frame in video.frames:
                        clock.timed(read_mask_png, folder / f"{frame}.png")
    return clock.seconds


def same_masks(dataset: Dataset, ours: Run, upstream: Path) -> bool:
    """Our vote equals upstream's Annotations PNG for PNG (decoded pixels)."""
    return all(
        np.array_equal(mask, read_mask_png(upstream / video.id / exp_id / f"{frame}.png"))
        for video in dataset
        for exp_id in video.exp_ids
        for frame, mask in zip(video.frames, ours.masks(video, exp_id), strict=True)
    )


def report(rows: list[tuple[str, float, float]], start: float, masks: int) -> tuple[float, float]:
    """Print one row per command; return (total CPU s, CPU ms per mask without start-up)."""
    for name, cpu, peak in rows:
        print(f"  {name:<24}{cpu:>8.2f} CPU s{peak:>8.0f} MiB peak")
    total = sum(cpu for _, cpu, _ in rows)
    per_mask = 1e3 * (total - start * len(rows)) / masks
    print(
        f"  {'total':<24}{total:>8.2f} CPU s; start-up {start:.2f} s x {len(rows)}, {per_mask:.3f} ms / mask"
    )
    return total, per_mask


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=5)
    parser.add_argument("--expressions", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--upstream", type=Path, help="a checkout of iccv2023_RVOS_Challenge")
    parser.add_argument("--upstream-python", default=sys.executable, help="with torch, tqdm, PIL")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rvos-bench-import"
    )
    args = parser.parse_args()
    root = args.workdir / f"{args.videos}x{args.expressions}x{args.frames}"
    root.mkdir(parents=True, exist_ok=True)
    dataset = build(root, args.videos, args.expressions, args.frames)
    masks = sum(len(v.exp_ids) * len(v.frames) for v in dataset)
    print(f"{masks} masks (expression-frames) at {SIZE[0]}x{SIZE[1]}, three models; CPU seconds")
    summary = {}
    if args.upstream is not None:
        print("upstream")
        rows = run_upstream(root, args.upstream, args.upstream_python)
        summary["upstream"] = report(rows, startup(UPSTREAM_IMPORTS), masks)
        summary["upstream_peak_mib"] = max(r[2] for r in rows)
    print("ours")
    rows = run_ours(root)
    summary["ours"] = report(rows, startup(OURS_IMPORTS), masks)
    summary["ours_peak_mib"] = max(r[2] for r in rows)
    keep_freed_memory()
    cv2.setNumThreads(1)
    cpu = floor(root, dataset)
    summary["floor"] = (cpu, 1e3 * cpu / masks)
    print(f"floor (no start-up){cpu:>13.2f} CPU s, {1e3 * cpu / masks:.3f} ms / mask")
    reading = vote_reading(root, dataset)
    summary["vote_reading"] = reading
    print(f"  + the vote's PNG decoding {reading:.2f} CPU s (in ours, not in the floor)")
    ours_total, ours_mask = summary["ours"]
    print(f"ours / floor per mask: {ours_mask / summary['floor'][1]:.2f}x")
    if args.upstream is not None:
        up_total, up_mask = summary["upstream"]
        same = same_masks(
            dataset, Run(root / "ours" / "vote"), root / "upstream" / "out" / "Annotations"
        )
        print(
            f"upstream / ours: {up_total / ours_total:.2f}x in total, {up_mask / ours_mask:.2f}x per mask; same PNGs: {same}"
        )
    empty_discarded()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
