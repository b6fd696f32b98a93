"""The registered entry: checkpoints in the competition layout and a run through the driver."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from referformer_testlib import tiny_model

from rvos_core.data import open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_nn.checkpoint import CheckpointMismatch, load_checkpoint
from rvos_nn.infer import InferSettings, infer
from rvos_nn.predictor import load_model_entry
from rvos_nn.testing import pretrained_folder
from rvos_referformer import load_checkpoint as referformer_load


def _competition_file(path: Path, state: dict[str, torch.Tensor], max_positions: int) -> Path:
    """A checkpoint as upstream's main.py saves it (legacy position_ids included)."""
    model = dict(state)
    model["text_encoder.embeddings.position_ids"] = torch.arange(max_positions)[None]
    args = argparse.Namespace(backbone="video_swin_b_p4w7", with_box_refine=True)
    torch.save(
        {"model": model, "optimizer": {}, "lr_scheduler": {}, "epoch": 3, "args": args}, path
    )
    return path


def test_entry_loads_the_competition_layout_strictly(tmp_path: Path) -> None:
    entry = load_model_entry("referformer")
    assert tuple(entry.variants) == ("full", "tiny") and entry.value_domain == "logit"
    source = tiny_model(seed=1)
    positions = source.config.text.max_position_embeddings
    path = _competition_file(tmp_path / "ckpt.pth", source.state_dict(), positions)
    target = entry.build("tiny")
    report = load_checkpoint(target, path, entry.checkpoint_rules)
    assert report.ok and report.container == "model"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_entry_reports_a_missing_key(tmp_path: Path) -> None:
    entry = load_model_entry("referformer")
    state = tiny_model().state_dict()
    del state["controller.layers.2.bias"]
    path = _competition_file(tmp_path / "bad.pth", state, 66)
    with pytest.raises(CheckpointMismatch, match="1 missing") as caught:
        referformer_load(entry.build("tiny"), path)
    assert caught.value.report.missing == ["controller.layers.2.bias"]


def test_driver_run_with_the_tiny_variant(tmp_path: Path) -> None:
    specs = [
        VideoSpec("vid_a", expressions=2, frames=3, size=(36, 48)),
        VideoSpec("vid_b", expressions=1, frames=2, size=(40, 40)),
    ]
    write_refytvos(tmp_path / "data", "valid", specs)
    dataset = open_dataset("refytvos", tmp_path / "data", "valid")
    settings = InferSettings(
        variant="tiny", checkpoint=None, pretrained=pretrained_folder(tmp_path / "pre")
    )
    assert infer(load_model_entry("referformer"), dataset, tmp_path / "run", settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"] == "referformer" and run["value_domain"] == "logit"
    scores = json.loads((tmp_path / "run" / "scores" / "vid_a.json").read_text())
    assert sorted(scores) == sorted(dataset.video("vid_a").exp_ids)
    assert all(len(v) == 3 for v in scores.values())
