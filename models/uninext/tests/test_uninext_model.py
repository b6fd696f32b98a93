"""Model-level behaviour on the tiny configurations: the forward, query selection, configs."""

from __future__ import annotations

import json

import pytest
import torch
from uninext_testlib import frames, tiny_model

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.parity import magnitude_atol
from rvos_uninext.config import UninextConfig
from rvos_uninext.preprocess import prepare_frames


def _inputs(model, count=2):
    batch = prepare_frames(frames(count, size=(30, 44)), model.config.min_size_test)
    ids = torch.tensor([[2, 20, 21, 22, 3] + [0] * (model.config.max_query_len - 5)])
    mask = (ids != 0).long()
    return batch, ids, mask


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_forward_equals_the_stepwise_path(kind):
    model = tiny_model(kind)
    batch, ids, mask = _inputs(model)
    with torch.no_grad():
        out, masks = model(batch, ids, mask)
        text = model.encode_text(ids, mask)
        stepwise = model.decode(model.encode_frames(batch), text, mask, with_reid=True)
    assert torch.equal(out.pred_logits, stepwise.pred_logits)
    assert torch.equal(out.pred_inst_embed, stepwise.pred_inst_embed)
    assert masks.shape == (
        2,
        model.config.num_proposals,
        *(s // 4 for s in batch.tensors.shape[-2:]),
    )


def test_masks_of_chosen_queries_are_those_of_all_queries():
    model = tiny_model("vit")
    batch, ids, mask = _inputs(model)
    with torch.no_grad():
        out, every = model(batch, ids, mask, with_reid=False)
        chosen = torch.tensor([[3, 0], [7, 7]])
        some = model.predict_masks(out, chosen)
    assert out.pred_inst_embed is None
    # Mask logits are sums of large terms that cancel (the fixture README's "Across CPUs"): the
    # two paths batch the dynamic convolution differently, so allow 1e-5 of their magnitude.
    picked = every[torch.arange(2)[:, None], chosen]
    torch.testing.assert_close(some, picked, atol=magnitude_atol(picked, 1e-5), rtol=1e-5)


def test_each_frame_fuses_its_own_copy_of_the_text():
    """Two frames decoded together give what each gives alone (the text is not shared state)."""
    model = tiny_model("convnext")
    batch, ids, mask = _inputs(model)
    with torch.no_grad():
        text = model.encode_text(ids, mask)
        visual = model.encode_frames(batch)
        both = model.decode(visual, text, mask)
        for frame in range(2):
            alone = model.encode_frames(
                prepare_frames(
                    frames(2, size=(30, 44))[frame : frame + 1], model.config.min_size_test
                )
            )
            single = model.decode(alone, text, mask)
            assert torch.allclose(single.pred_logits[0], both.pred_logits[frame], atol=1e-4)


@pytest.mark.parity
def test_fixture_config_reads_upstream_names():
    spec = json.loads((parity_dir("uninext/model/vit") / "config.json").read_text())
    config = UninextConfig.from_upstream(spec)
    overrides = spec["cfg_overrides"]
    assert config.num_proposals == overrides["MODEL.DDETRS.TWO_STAGE_NUM_PROPOSALS"]
    assert config.dim_feedforward == overrides["MODEL.DDETRS.DIM_FEEDFORWARD"]
    assert config.max_query_len == overrides["MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN"]
    assert config.min_size_test == overrides["INPUT.MIN_SIZE_TEST"]
    assert config.backbone.depth == spec["tiny_backbone"]["depth"]
    assert config.text.vocab_size == spec["bert_config"]["vocab_size"]


def test_unsupported_upstream_switches_are_refused():
    with pytest.raises(ConfigError, match="USE_IOU_BRANCH"):
        UninextConfig.from_upstream({"cfg_overrides": {"MODEL.USE_IOU_BRANCH": False}})
    with pytest.raises(ConfigError, match="backbone_kind"):
        UninextConfig.from_upstream({"backbone_kind": "resnet"})


def test_config_limits():
    with pytest.raises(ConfigError, match="2 decoder layers"):
        UninextConfig.tiny("vit").replace(dec_layers=1)
    with pytest.raises(ConfigError, match="hidden_dim must be 256"):
        UninextConfig.tiny("vit").replace(hidden_dim=128)
    with pytest.raises(ConfigError, match="num_vl_layers"):
        UninextConfig.tiny("vit").replace(num_vl_layers=3)
