"""Strict loading: the full key layouts (meta device), the detectron2 file layout, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from uninext_testlib import tiny_model

from rvos_core.errors import InputError
from rvos_core.testing import parity_dir
from rvos_nn.checkpoint import (
    CheckpointMismatch,
    CheckpointReport,
    compare,
    load_checkpoint,
    map_keys,
    shared_groups,
)
from rvos_uninext.config import UninextConfig
from rvos_uninext.entry import CHECKPOINT_RULES, CONVNEXT, VITH
from rvos_uninext.model import build

FULL = {"vit_huge": VITH.build, "convnext_large": CONVNEXT.build}


def _keys_full() -> dict:
    return json.loads((parity_dir("uninext") / "keys_full.json").read_text())


def _layout_state(entries: list, real: set[str]) -> dict[str, torch.Tensor]:
    """Tensors of the stored shapes and dtypes: zeros for the ``real`` keys (the heads stored
    twice, whose copies are compared), meta (no memory) for the rest."""
    return {
        name: torch.zeros(
            shape,
            dtype=getattr(torch, dtype.removeprefix("torch.")),
            device="cpu" if name in real else "meta",
        )
        for name, shape, dtype in entries
    }


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_model_accounts_for_every_stored_key(name):
    """Every key of the released layout is a model key of the same shape or dropped by a named rule;
    every model key is stored; the heads stored twice are one module here."""
    layout = _keys_full()[name]
    with torch.device("meta"):
        model = FULL[name]("full")
    twins = [g for g in shared_groups(model) if len(g) > 1]
    state = _layout_state(layout["keys"], {k for g in twins for k in g})
    assert len(state) == layout["num_keys"]
    report = CheckpointReport(source=name, stored=len(state))
    compare(model, map_keys(state, CHECKPOINT_RULES, report), CHECKPOINT_RULES, report)
    assert not report.missing and not report.unexpected and not report.misshaped, report.format()
    assert set(report.ignored) == {
        "template-backbone",
        "sot-fuser",
        "adjust-layer",
        "criterion-buffer",
    }
    # The RVOS model's unique numbers plus the dropped ones are the file's unique numbers.
    shapes = {n: s for n, s, _ in layout["keys"]}
    dropped = sum(torch.Size(shapes[k]).numel() for keys in report.ignored.values() for k in keys)
    unique = {id(t): t.numel() for t in model.state_dict(keep_vars=True).values()}
    assert sum(unique.values()) + dropped == layout["numel_unique_tensors"]
    assert any("detr.detr.bbox_embed.0.layers.0.weight" in g for g in twins)
    assert any("detr.detr.class_embed.0.bias_lang" in g for g in twins)


@pytest.mark.parity
def test_tiny_fixture_state_dict_loads_strictly(tmp_path: Path):
    """The fixture's full UNINEXT_VID state dict, saved as detectron2 does, loads strictly."""
    fixture = parity_dir("uninext/model/vit")
    state = torch.load(fixture / "state_dict.pt", weights_only=True)
    path = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 1000, "__author__": "test"}, path)
    config = json.loads((fixture / "config.json").read_text())
    model = build(UninextConfig.from_upstream(config))
    report = load_checkpoint(model, path, CHECKPOINT_RULES)
    assert report.ok and report.container == "model"
    assert "template-backbone" in report.ignored
    loaded = model.state_dict()
    assert set(loaded) <= set(state)
    assert all(torch.equal(value, state[key].float()) for key, value in loaded.items())


def test_legacy_position_ids_are_dropped(tmp_path: Path):
    source = tiny_model("convnext", seed=1)
    state = dict(source.state_dict())
    state["text_encoder.body.model.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save({"model": state}, tmp_path / "old.pth")
    target = tiny_model("convnext", seed=2)
    report = load_checkpoint(target, tmp_path / "old.pth", CHECKPOINT_RULES)
    assert report.ok and "legacy-text-buffers" in report.ignored
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())


def test_checkpoint_of_the_other_backbone_is_refused_without_loading(tmp_path: Path):
    torch.save({"model": tiny_model("convnext").state_dict()}, tmp_path / "convnext.pth")
    target = tiny_model("vit", seed=5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(target, tmp_path / "convnext.pth", CHECKPOINT_RULES)
    report = caught.value.report
    assert any(k.startswith("detr.detr.backbone.0.backbone.blocks.") for k in report.missing)
    assert any(k.startswith("detr.detr.backbone.0.backbone.stages.") for k in report.unexpected)
    assert "convnext.pth" in str(caught.value) and "missing" in str(caught.value)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_checkpoint_of_another_model_is_refused(tmp_path: Path):
    """A ReferFormer-like file (other names, RoBERTa text encoder) is a mismatch, not a partial load."""
    state = {
        "backbone.0.body.patch_embed.proj.weight": torch.zeros(128, 3, 1, 4, 4),
        "text_encoder.embeddings.word_embeddings.weight": torch.zeros(50265, 768),
        "transformer.level_embed": torch.zeros(4, 256),
    }
    torch.save({"model": state, "epoch": 3}, tmp_path / "referformer.pth")
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(tiny_model("vit"), tmp_path / "referformer.pth", CHECKPOINT_RULES)
    assert sorted(caught.value.report.unexpected) == sorted(state)
    assert len(caught.value.report.missing) == len(tiny_model("vit").state_dict())


def test_unequal_duplicate_heads_are_refused(tmp_path: Path):
    state = dict(tiny_model("vit").state_dict())
    key = "detr.detr.transformer.decoder.class_embed.0.bias_lang"
    state[key] = state[key] + 1.0
    torch.save({"model": state}, tmp_path / "twins.pth")
    with pytest.raises(CheckpointMismatch, match="bias_lang"):
        load_checkpoint(tiny_model("vit"), tmp_path / "twins.pth", CHECKPOINT_RULES)


def test_truncated_checkpoint_is_an_input_error(tmp_path: Path):
    torch.save({"model": tiny_model("vit").state_dict()}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    model = tiny_model("vit", seed=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputError, match=r"cut\.pth"):
        load_checkpoint(model, tmp_path / "cut.pth", CHECKPOINT_RULES)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
