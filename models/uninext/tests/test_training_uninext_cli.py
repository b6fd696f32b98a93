"""A tiny UNINEXT trains through the command a user runs (``python -m rvos_train uninext_... --config
tiny``) on the engine tests' generated world: its loss falls clearly, its checkpoint loads strictly
into the inference model, a run killed after a checkpoint resumes to the same weights, and two
gloo processes equal one process with the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rvos_nn import testing
from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.text import UNINEXT_BERT_TOKENIZER
from rvos_uninext.entry import CONVNEXT

# the engine tests' helpers (train/tests): the generated world, the command, the kill
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "train" / "tests"))
from trainlib import (
    assert_same_step,
    environment,
    kill_after_first_checkpoint,
    metric_lines,
    on_two_processes,
    run,
    train_command,
    weights,
    write_world,
)

SMALL = ("data.options.scales=[64]", "data.options.max_size=96")
"""The world's frames (64 x 96) at their own size."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("world")
    data, pretrained = write_world(root)
    testing.pretrained_folder(pretrained, UNINEXT_BERT_TOKENIZER)
    return root, data, pretrained


def command(out: Path, world: tuple[Path, Path, Path], *extra: str) -> list[str]:
    _, data, pretrained = world
    sets = [s for item in SMALL for s in ("--set", item)]
    return train_command("uninext_convnext", out, data, pretrained, *sets, *extra)


def test_tiny_uninext_loss_falls_and_its_checkpoint_loads(world: tuple[Path, Path, Path]) -> None:
    """60 steps (12 epochs of the world's 10 expressions, 2 clips a step) from random weights:
    the mean loss of the last 5 steps is under 0.7 of the first 5's (0.61 measured; the
    denoising box terms, at upstream's noise scale 1, barely move in so few steps). The
    validation hook runs in this environment (the inference driver and rvos_eval on the world's
    MeViS valid_u) and logs J&F."""
    out = world[0] / "overfit"
    extra = ["--set", "optim.epochs=12", "--set", "optim.lr_drop=[18]", "--log-every", "1"]
    extra += ["--set", "validate.every_epochs=12", "--set", "validate.split=valid_u"]
    done = run(command(out, world, *extra))
    assert done.returncode == 0, done.stderr
    losses = [line["loss"] for line in metric_lines(out) if "loss" in line]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, losses
    assert 0.0 <= metric_lines(out)[-1]["valid_J&F"] <= 1.0
    model = CONVNEXT.build("tiny")
    assert load_checkpoint(model, out / "model.pth", CONVNEXT.checkpoint_rules).ok


def test_killed_run_resumes_to_the_same_weights(world: tuple[Path, Path, Path]) -> None:
    """10 steps straight = the same command killed after its step-2 checkpoint and run again:
    the same weights bit for bit (the denoising noise and the reid negatives come from the
    engine's per-step generator), the same logged losses."""
    extra = ["--set", "optim.epochs=2", "--checkpoint-every", "2", "--log-every", "1"]
    straight, resumed = world[0] / "straight", world[0] / "resumed"
    assert run(command(straight, world, *extra)).returncode == 0
    again = command(resumed, world, *extra)
    process = subprocess.Popen(again, env=environment(), stderr=subprocess.DEVNULL)
    kill_after_first_checkpoint(process, resumed)
    assert not (resumed / "done.json").exists(), "the run ended before it could be killed"
    assert run(again).returncode == 0
    a, b = weights(straight / "model.pth"), weights(resumed / "model.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert metric_lines(straight) == metric_lines(resumed)


def test_two_gloo_processes_equal_one_with_the_same_global_batch(
    world: tuple[Path, Path, Path],
) -> None:
    """torchrun with 2 processes x 1 clip against 1 process accumulating 2 micro-batches of 1:
    each micro-batch has its own denoising layout and draws in both, so after 3 steps the weights
    agree to float32 rounding (|diff| <= 1e-5, where one step moves them by ~1e-3)."""
    extra = ["--set", "optim.batch_size=1", "--set", "optim.reference_gpus=2"]
    extra += ["--set", "optim.epochs=1", "--stop-after", "3", "--checkpoint-every", "1"]
    single, double = world[0] / "single", world[0] / "double"
    assert run(command(single, world, *extra)).returncode == 0
    done = on_two_processes(command(double, world, *extra))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_step(single, double, 3)
