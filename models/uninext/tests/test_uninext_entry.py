"""The registered entries and a run through the inference driver on a synthetic dataset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from uninext_testlib import pretrained_folder

from rvos_core.data import open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import unset_path_variables
from rvos_nn.infer import InferSettings, infer, main
from rvos_nn.predictor import load_model_entry
from rvos_uninext.config import UninextConfig


@pytest.mark.parametrize(
    ("name", "kind"), [("uninext_vith", "vit"), ("uninext_convnext", "convnext")]
)
def test_entries_are_registered(name, kind):
    entry = load_model_entry(name)
    assert tuple(entry.variants) == ("full", "tiny", "zoo") and entry.default_variant == "full"
    assert entry.value_domain == "probability"
    assert entry.checkpoint_file == f"{name}.pth"
    with torch.device("meta"):
        assert entry.build("tiny").config.backbone_kind == kind
        zoo = entry.build("zoo").config  # the tiny network at the world's frame size
    tiny = UninextConfig.tiny(kind)
    assert (zoo.min_size_test, zoo.max_size_test) == (96, 160)
    assert dataclasses.replace(zoo, min_size_test=160, max_size_test=tiny.max_size_test) == tiny


def test_full_configs_are_the_released_ones():
    vith, convnext = UninextConfig.vit_huge(), UninextConfig.convnext_large()
    assert (vith.backbone.embed_dim, vith.backbone.depth, vith.backbone.num_heads) == (1280, 32, 16)
    assert convnext.backbone.depths == (3, 3, 27, 3) and convnext.backbone.dims == (
        192,
        384,
        768,
        1536,
    )
    for config in (vith, convnext):
        assert (config.num_proposals, config.dim_feedforward, config.vl_hidden_dim) == (
            900,
            2048,
            2048,
        )
        assert (config.enc_layers, config.dec_layers, config.max_query_len) == (6, 6, 256)
        assert (config.min_size_test, config.max_size_test) == (480, 1333)
        assert config.text.vocab_size == 30522 and not config.text.add_pooling_layer


def _dataset(root: Path):
    specs = [
        VideoSpec("vid_a", expressions=2, frames=3, size=(36, 48)),
        VideoSpec("vid_b", expressions=1, frames=1, size=(40, 30)),
    ]
    write_refytvos(root, "valid", specs)
    return open_dataset("refytvos", root, "valid")


def test_driver_run_writes_a_probability_run(tmp_path):
    dataset = _dataset(tmp_path / "data")
    settings = InferSettings(
        variant="tiny",
        checkpoint=None,
        pretrained=pretrained_folder(tmp_path / "pre"),
        save_probs=True,
    )
    assert infer(load_model_entry("uninext_convnext"), dataset, tmp_path / "run", settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"] == "uninext_convnext" and run["value_domain"] == "probability"
    scores = json.loads((tmp_path / "run" / "scores" / "vid_b.json").read_text())
    assert list(scores) == list(dataset.video("vid_b").exp_ids) and all(
        len(v) == 1 for v in scores.values()
    )


def test_cli_refuses_a_checkpoint_of_another_model(tmp_path, monkeypatch, capsys):
    """A ReferFormer fixture state dict: exit 2, the file and the mismatch named, nothing written."""
    _dataset(tmp_path / "data")
    state = {
        "transformer.level_embed": torch.zeros(4, 256),
        "backbone.0.body.norm.weight": torch.ones(8),
    }
    checkpoint = tmp_path / "referformer_ft.pth"
    torch.save({"model": state}, checkpoint)
    env = tmp_path / "paths.env"
    env.write_text(
        f"DATA = {tmp_path / 'data'}\nPRETRAINED = {pretrained_folder(tmp_path / 'pre')}\n"
        f"CHECKPOINTS = {tmp_path}\nWORK = {tmp_path / 'work'}\nSPLIT = valid\n"
    )
    unset_path_variables(monkeypatch)
    monkeypatch.setenv("RVOS_PATHS_ENV", str(env))
    out = tmp_path / "run"
    argv = ["uninext_vith", "--variant", "tiny", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--dataset", "refytvos"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(checkpoint) in err
    assert "does not match the model" in err and "missing" in err and "unexpected" in err
    assert not out.exists()
