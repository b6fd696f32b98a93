"""The training run folder: settings are checked on resume, checkpoints appear whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rvos_core.errors import ConfigError, InputError
from rvos_train.rundir import KEEP_CHECKPOINTS, RunDir


def test_other_settings_are_refused_with_both_values(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.check_settings({"config": {"optim": {"lr": 1e-4}}, "precision": "fp32"}) is False
    assert run.check_settings({"config": {"optim": {"lr": 1e-4}}, "precision": "fp32"}) is True
    with pytest.raises(ConfigError, match=r"config\.optim\.lr: run has 0\.0001, asked 0\.001"):
        run.check_settings({"config": {"optim": {"lr": 1e-3}}, "precision": "fp32"})


def test_checkpoints_latest_and_pruning(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.latest() is None
    for step in (1, 2, 3):
        run.save(step, {"model": {"w": torch.full((2,), float(step))}}, {"step": step})
    latest = run.latest()
    assert latest is not None and latest.step == 3
    assert torch.load(latest.model)["model"]["w"].tolist() == [3.0, 3.0]
    assert len(list(run.checkpoints.glob("step-*"))) == KEEP_CHECKPOINTS
    assert not list(run.checkpoints.glob(".staging-*"))


def test_incomplete_latest_is_named(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    folder = run.save(4, {"model": {}}, {"step": 4})
    (folder / "trainer.pt").unlink()
    with pytest.raises(InputError, match=r"trainer\.pt"):
        run.latest()


def test_metrics_are_cut_back_to_the_checkpoint(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.metrics_file.write_text("".join(json.dumps({"step": s}) + "\n" for s in (10, 20, 30)))
    run.cut_metrics(20)
    assert [json.loads(x)["step"] for x in run.metrics_file.read_text().splitlines()] == [10, 20]


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    first, second = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    first.claim()
    try:
        with pytest.raises(ConfigError, match="another training process"):
            second.claim()
    finally:
        first.release()
    second.claim()
    second.release()
