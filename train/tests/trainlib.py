"""A small generated world and the training command, shared by the engine's tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from rvos_core.synthetic import VideoSpec, label_maps, write_mevis_train
from rvos_nn.text import TEXT_ENCODERS, train_roberta_tokenizer

SPECS = [VideoSpec(f"o{i:03d}", 4, 4, (64, 96)) for i in range(2)]
"""Two videos of two objects (red, green), four frames each: every video's MeViS split has an
expression per object, one naming its side, and one on both objects."""
NO_AUGMENTATION = {
    "referformer": [
        "data.options.flip_p=0",
        "data.options.photometric=false",
        "data.options.resize_only_p=1.0",
    ],
    "soc": ["data.options.hflip=false"],
    "uninext": ["data.options.flip_p=0", "data.options.crop_p=0"],
}
RECIPE_OF = {"soc": "soc", "uninext_vith": "uninext", "uninext_convnext": "uninext"}
"""Each model's recipe (the others': referformer)."""
CLIP_FRAMES = {"uninext": 2}
"""Frames per clip of a recipe on the world (the others': 4)."""


def write_world(root: Path) -> tuple[Path, Path]:
    """MeViS train and valid_u (the same videos: the overfitting test scores the clips it trained
    on) and a tokenizer trained on their expressions; returns (DATA, PRETRAINED)."""
    data, pretrained = root / "data", root / "pretrained"
    for split in ("train", "valid_u"):
        write_mevis_train(data, SPECS, seed=0, split=split)
    meta = json.loads((data / "mevis" / "train" / "meta_expressions.json").read_text())
    captions = [e["exp"] for v in meta["videos"].values() for e in v["expressions"].values()]
    vocab = TEXT_ENCODERS["tiny-roberta"].vocab_size
    train_roberta_tokenizer(pretrained / "roberta-base", captions * 4, vocab)
    return data, pretrained


def text_blind_j(root: Path) -> float:
    """Mean J (IoU over the frames of each expression, as MeViS scores it) of the best mask
    that ignores the text: the union of the video's objects."""
    meta = json.loads((root / "data" / "mevis" / "valid_u" / "meta_expressions.json").read_text())
    scores = []
    for spec in SPECS:
        labels = label_maps(spec, seed=0)
        union = labels > 0
        for expression in meta["videos"][spec.id]["expressions"].values():
            target = torch.zeros(labels.shape, dtype=torch.bool).numpy()
            for obj in expression["obj_id"]:
                target |= labels == obj + 1
            per_frame = [
                1.0 if not (u | t).any() else (u & t).sum() / (u | t).sum()
                for u, t in zip(union, target, strict=True)
            ]
            scores.append(sum(per_frame) / len(per_frame))
    return float(sum(scores) / len(scores))


def train_command(model: str, run: Path, data: Path, pretrained: Path, *extra: str) -> list[str]:
    """The training command on the world, as a user types it (no augmentation draws that could
    hide a regression: flips and crops off)."""
    recipe = RECIPE_OF.get(model, "referformer")
    sets = [s for item in NO_AUGMENTATION[recipe] for s in ("--set", item)]
    return [
        sys.executable,
        "-m",
        "rvos_train",
        model,
        "--config",
        "tiny",
        "--out",
        str(run),
        "--data",
        str(data),
        "--pretrained",
        str(pretrained),
        "--workers",
        "0",
        "--set",
        'data.sets=["mevis"]',
        "--set",
        f"data.num_frames={CLIP_FRAMES.get(recipe, 4)}",
        *sets,
        *extra,
    ]


def environment() -> dict[str, str]:
    return {**os.environ, "RVOS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=environment(), check=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint written by the engine."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    (state,) = stored.values()
    return state


def metric_lines(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing field."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "clips_per_s"} for line in lines]


def kill_after_first_checkpoint(process: subprocess.Popen, run_dir: Path) -> None:
    """SIGKILL ``process`` as soon as its run folder holds a checkpoint (or after 120 s)."""
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def on_two_processes(command: list[str]) -> subprocess.CompletedProcess:
    """The training command (``python -m rvos_train ...``) under torchrun with 2 processes."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return run([*torchrun, "--nproc_per_node", "2", *command[1:]])


def assert_same_step(single: Path, double: Path, step: int, tolerance: float = 1e-5) -> None:
    """Checkpoint ``step`` of two runs agrees within ``tolerance``, while that step moved the
    weights by more (so the comparison is not of untouched weights)."""
    name = f"step-{step:08d}"
    a, b = (weights(r / "checkpoints" / name / "model.pth") for r in (single, double))
    before = weights(single / "checkpoints" / f"step-{step - 1:08d}" / "model.pth")
    worst = max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())
    moved = max((a[k] - before[k]).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst <= tolerance < moved, (worst, moved)
