"""The training engine end to end, through the command a user runs: a tiny model overfits a few
generated clips, an interrupted run resumes bit-identically, two gloo processes equal one process
with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainlib import (
    assert_same_step,
    environment,
    kill_after_first_checkpoint,
    metric_lines,
    on_two_processes,
    run,
    text_blind_j,
    train_command,
    weights,
    write_world,
)

from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.predictor import load_model_entry


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("world")
    data, pretrained = write_world(root)
    return root, data, pretrained


def test_tiny_referformer_overfits_and_segments(world: tuple[Path, Path, Path]) -> None:
    """300 steps (60 epochs of the 10 clips) from random weights: the loss falls by an order of
    magnitude, and the engine's validation hook (the real inference driver + MeViS evaluation,
    here on the same clips) gives a J&F above 0.6 and a J well above the best text-blind mask
    (the union of the video's objects: J ~ 0.6 here, since every video has two objects of
    similar size and one expression on both)."""
    root, data, pretrained = world
    out = root / "overfit"
    command = train_command("referformer", out, data, pretrained)
    command += ["--set", "optim.epochs=60", "--set", "optim.lr_drop=[50]", "--log-every", "5"]
    command += ["--set", "validate.every_epochs=60", "--set", "validate.split=valid_u"]
    done = run(command)
    assert done.returncode == 0, done.stderr
    lines = metric_lines(out)
    losses = [line["loss"] for line in lines if "loss" in line]
    assert losses[0] / min(losses[-3:]) >= 10, losses
    checkpoint = out / "model.pth"
    assert (out / "done.json").is_file() and checkpoint.is_file()
    model = load_model_entry("referformer").build("tiny")
    assert load_checkpoint(model, checkpoint).ok  # loads strictly, as the inference driver does
    scores = lines[-1]
    assert (out / "valid" / "epoch-060" / "eval" / "summary.json").is_file()
    blind = text_blind_j(root)
    assert scores["valid_J&F"] > 0.6 and scores["valid_J"] > blind + 0.1, (scores, blind)


def test_killed_run_resumes_bit_identically(world: tuple[Path, Path, Path]) -> None:
    """12 steps straight = the same command killed (SIGKILL) after its step-2 checkpoint and run
    again: the same weights bit for bit, the same logged losses."""
    root, data, pretrained = world
    extra = ["--set", "optim.epochs=6", "--checkpoint-every", "2", "--log-every", "1"]
    straight = root / "straight"
    assert run(train_command("referformer", straight, data, pretrained, *extra)).returncode == 0

    resumed = root / "resumed"
    command = train_command("referformer", resumed, data, pretrained, *extra)
    process = subprocess.Popen(command, env=environment(), stderr=subprocess.DEVNULL)
    kill_after_first_checkpoint(process, resumed)
    assert not (resumed / "done.json").exists(), "the run ended before it could be killed"
    again = run(command)
    assert again.returncode == 0, again.stderr

    a, b = weights(straight / "model.pth"), weights(resumed / "model.pth")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metric_lines(straight) == metric_lines(resumed)


def test_stop_and_resume_equals_straight(world: tuple[Path, Path, Path]) -> None:
    root, data, pretrained = world
    extra = ["--set", "optim.epochs=2", "--set", "optim.lr_drop=[1]"]
    straight, split = root / "straight2", root / "split2"
    assert run(train_command("referformer", straight, data, pretrained, *extra)).returncode == 0
    first = run(train_command("referformer", split, data, pretrained, *extra, "--stop-after", "3"))
    assert first.returncode == 0 and not (split / "done.json").exists()
    assert run(train_command("referformer", split, data, pretrained, *extra)).returncode == 0
    a, b = weights(straight / "model.pth"), weights(split / "model.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_gloo_processes_equal_one_with_the_same_global_batch(
    world: tuple[Path, Path, Path],
) -> None:
    """torchrun with 2 processes x 1 clip against 1 process accumulating 2 micro-batches of 1:
    the same clips, dropout draws and normalisation; only the order of the gradient sums differs
    (all-reduce vs accumulation), so after 3 AdamW steps the weights agree to float32 rounding
    amplified by Adam's normalisation: |diff| <= 1e-5 (lr 1e-3: 1% of one step)."""
    root, data, pretrained = world
    extra = [
        "--set",
        "optim.batch_size=1",
        "--set",
        "optim.reference_gpus=2",
        "--set",
        "optim.epochs=1",
        "--stop-after",
        "3",
        "--checkpoint-every",
        "1",
    ]
    single = root / "single"
    assert run(train_command("soc", single, data, pretrained, *extra)).returncode == 0
    double = root / "double"
    command = train_command("soc", double, data, pretrained, *extra)
    done = on_two_processes(command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_step(single, double, 3)
    for x, y in zip(metric_lines(single), metric_lines(double), strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)


def test_bf16_autocast_trains_on_the_cpu(world: tuple[Path, Path, Path]) -> None:
    root, data, pretrained = world
    out = root / "bf16"
    command = train_command("soc", out, data, pretrained, "--precision", "bf16")
    done = run([*command, "--stop-after", "2", "--log-every", "1"])
    assert done.returncode == 0, done.stderr
    lines = metric_lines(out)
    assert len(lines) == 2 and all(0 < line["loss"] < float("inf") for line in lines)
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"


def test_loader_workers_change_nothing(world: tuple[Path, Path, Path]) -> None:
    """Clips drawn in two loader processes train the same weights as clips drawn in this one."""
    root, data, pretrained = world
    runs = {}
    for workers in ("0", "2"):
        out = root / f"workers-{workers}"
        command = [*train_command("mutr", out, data, pretrained), "--stop-after", "2"]
        command[command.index("--workers") + 1] = workers
        done = run(command)
        assert done.returncode == 0, done.stderr
        runs[workers] = weights(out / "checkpoints" / "step-00000002" / "model.pth")
    assert all(torch.equal(runs["0"][k], runs["2"][k]) for k in runs["0"])


def test_the_joint_recipe_reads_all_four_sets(tmp_path: Path) -> None:
    """soc/joint as shipped (variant and init aside) takes a step on the generated layouts of
    RefCOCO, RefCOCO+, RefCOCOg and Ref-YouTube-VOS."""
    from trainlib import write_world

    from rvos_core.synthetic import VideoSpec, write_training_data

    _, pretrained = write_world(tmp_path / "tokenizer")
    data = write_training_data(tmp_path / "data", [VideoSpec("j000", 2, 8, (64, 96))])
    out = tmp_path / "joint"
    command = [
        sys.executable, "-m", "rvos_train", "soc", "--config", "joint", "--out", str(out),
        "--data", str(data), "--pretrained", str(pretrained), "--workers", "0",
        "--set", 'variant="tiny"', "--set", 'init.source="random"',
        "--set", "optim.reference_gpus=1", "--stop-after", "1",
    ]  # fmt: skip
    done = run(command)
    assert done.returncode == 0, done.stderr
    assert (out / "checkpoints" / "step-00000001" / "model.pth").is_file()
