"""Configuration: variants, upstream names, the full model's checkpoint layout."""

from __future__ import annotations

import json

import pytest

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.testing import assert_full_layout
from rvos_referformer import FULL, TINY, VARIANTS, ReferFormerConfig, build
from rvos_referformer.parity import fixture_config


@pytest.mark.parity
def test_full_variant_has_the_competition_checkpoint_layout() -> None:
    assert_full_layout(lambda: build(VARIANTS["full"]), "referformer")


@pytest.mark.parity
def test_upstream_arguments_of_the_fixture() -> None:
    config = fixture_config(parity_dir("referformer"))
    build_section = json.loads((parity_dir("referformer") / "config.json").read_text())["build"]
    args = build_section["model_args"]
    for name in (
        "hidden_dim",
        "enc_layers",
        "dec_layers",
        "num_queries",
        "mask_dim",
        "dim_feedforward",
    ):
        assert getattr(config, name) == args[name]
    assert config.backbone.embed_dim == build_section["video_swin"]["embed_dim"]
    assert config.text.hidden_size == build_section["roberta_config"]["hidden_size"]


def test_full_defaults_are_the_competition_values() -> None:
    # opts.py defaults + infer_ytvos.sh (models/referformer/README.md)
    assert (FULL.hidden_dim, FULL.enc_layers, FULL.dec_layers, FULL.num_queries) == (256, 4, 4, 5)
    assert (FULL.dim_feedforward, FULL.mask_dim, FULL.num_classes, FULL.resize_short) == (
        2048,
        256,
        1,
        360,
    )
    assert FULL.backbone.depths == (2, 2, 18, 2) and FULL.text.hidden_size == 768


def test_from_upstream_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ConfigError, match="two_stage"):
        ReferFormerConfig.from_upstream({"two_stage": True})
    with pytest.raises(ConfigError, match="unknown ReferFormer option"):
        ReferFormerConfig.from_upstream({"hidden_dimension": 64})
    with pytest.raises(ConfigError, match="input_feat_size"):
        ReferFormerConfig.from_upstream({}, overrides={"FeatureResizer.input_feat_size": 512})
    with pytest.raises(ConfigError, match="backbone"):
        ReferFormerConfig.from_upstream({"backbone": "resnet50"})


def test_from_upstream_defaults_and_classes() -> None:
    assert ReferFormerConfig.from_upstream({"backbone": "video_swin_b_p4w7"}) == FULL
    assert (
        ReferFormerConfig.from_upstream({"binary": False, "dataset_file": "ytvos"}).num_classes
        == 65
    )


def test_invalid_combinations() -> None:
    with pytest.raises(ConfigError, match="dec_layers"):
        TINY.replace(dec_layers=1)
    with pytest.raises(ConfigError, match="multiple of 32"):
        TINY.replace(hidden_dim=48)
