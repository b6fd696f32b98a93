"""Configuration: variants, upstream names and overrides, the full model's checkpoint layout."""

from __future__ import annotations

import json

import pytest

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_mutr import FULL, TINY, VARIANTS, MUTRConfig, build
from rvos_mutr.parity import fixture_config
from rvos_nn.testing import assert_full_layout


@pytest.mark.parity
def test_full_variant_has_the_competition_checkpoint_layout() -> None:
    assert_full_layout(lambda: build(VARIANTS["full"]), "mutr")


@pytest.mark.parity
def test_upstream_arguments_and_overrides_of_the_fixture() -> None:
    config = fixture_config(parity_dir("mutr"))
    section = json.loads((parity_dir("mutr") / "config.json").read_text())["build"]
    args = section["model_args"]
    for name in (
        "hidden_dim",
        "nheads",
        "enc_layers",
        "dec_layers",
        "num_queries",
        "mask_dim",
        "dim_feedforward",
        "controller_layers",
        "dynamic_mask_channels",
    ):
        assert getattr(config, name) == args[name]
    overrides = section["constructor_overrides"]
    assert config.mta_dim_feedforward == overrides["MTALayer.d_ffn"]
    assert config.mti_dim_feedforward == overrides["MTI.dim_feedforward"]
    assert config.text.hidden_size == overrides["FeatureResizer.input_feat_size"]
    assert config.backbone.depths == tuple(section["video_swin"]["depths"])
    assert config.text.num_hidden_layers == section["roberta_config"]["num_hidden_layers"]


def test_full_defaults_are_the_competition_values() -> None:
    # opts.py defaults + inference_ytvos.sh + the values MUTR.__init__ hard-codes (README table)
    assert (FULL.hidden_dim, FULL.enc_layers, FULL.dec_layers, FULL.num_queries) == (256, 4, 4, 5)
    assert (FULL.dim_feedforward, FULL.mask_dim, FULL.num_classes) == (2048, 256, 1)
    assert (FULL.mta_layers, FULL.mta_heads, FULL.mta_dim_feedforward) == (1, 8, 2048)
    assert (FULL.mti_window_size, FULL.mti_enc_layers, FULL.mti_dec_layers) == (4, 3, 3)
    assert (FULL.mti_nheads, FULL.mti_dim_feedforward) == (8, 2048)
    assert FULL.backbone.depths == (2, 2, 18, 2) and FULL.text.hidden_size == 768
    assert FULL.resize_short == 360
    assert MUTRConfig.from_upstream({"backbone": "video_swin_b_p4w7", "binary": True}) == FULL


def test_from_upstream_overrides_and_refusals() -> None:
    config = MUTRConfig.from_upstream(
        {}, overrides={"MTI.window_size": 2, "MTI.enc_layers": 1, "MTALayer.d_ffn": 64}
    )
    assert (config.mti_window_size, config.mti_enc_layers, config.mta_dim_feedforward) == (2, 1, 64)
    with pytest.raises(ConfigError, match="two_stage"):
        MUTRConfig.from_upstream({"two_stage": True})
    with pytest.raises(ConfigError, match="unknown MUTR option"):
        MUTRConfig.from_upstream({"hidden_dimension": 64})
    with pytest.raises(ConfigError, match="input_feat_size"):
        MUTRConfig.from_upstream({}, overrides={"FeatureResizer.input_feat_size": 512})
    with pytest.raises(ConfigError, match=r"override 'MTI\.pre_norm'"):
        MUTRConfig.from_upstream({}, overrides={"MTI.pre_norm": True})


def test_invalid_combinations() -> None:
    with pytest.raises(ConfigError, match="dec_layers"):
        TINY.replace(dec_layers=1)
    with pytest.raises(ConfigError, match="multiple of 32"):
        TINY.replace(hidden_dim=48)
    with pytest.raises(ConfigError, match="mti_window_size"):
        TINY.replace(mti_window_size=-1)
