"""Configuration: variants, upstream names, the full model's checkpoint layout."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.testing import assert_full_layout
from rvos_soc import FULL, TINY, VARIANTS, DeformTransformerConfig, SOCConfig, VitaConfig, build
from rvos_soc.parity import fixture_config


def _fixture_config() -> dict[str, Any]:
    return json.loads((parity_dir("soc") / "config.json").read_text())


@pytest.mark.parity
def test_full_variant_has_the_competition_checkpoint_layout() -> None:
    assert_full_layout(lambda: build(VARIANTS["full"]), "soc")


@pytest.mark.parity
def test_full_variant_is_the_yaml_of_the_competition() -> None:
    build_section = _fixture_config()["build"]
    values = dict(build_section["model_config"])
    values.update(build_section["yaml_full_values"])
    upstream = SOCConfig.from_upstream(values, video_swin=build_section["video_swin_full"])
    assert upstream == FULL  # RoBERTa-base is the default text encoder
    preprocess = _fixture_config()["input"]["preprocess"]
    assert ([FULL.eval_short_size], FULL.eval_max_size) == (
        preprocess["full_sizes"],
        preprocess["full_max_size"],
    )


@pytest.mark.parity
def test_upstream_names_of_the_fixture() -> None:
    config = fixture_config(parity_dir("soc"))
    build_section = _fixture_config()["build"]
    model_config = build_section["model_config"]
    for name, value in model_config["DeformTransformer"].items():
        if name != "two_stage":
            assert getattr(config.transformer, name) == value, name
    for name, value in model_config["VITA"].items():
        if name != "num_frames":
            assert getattr(config.vita, name) == value, name
    for name in ("mask_kernels_dim", "controller_layers", "dynamic_mask_channels", "rel_coord"):
        assert getattr(config, name) == model_config[name]
    assert config.backbone.embed_dim == build_section["video_swin"]["embed_dim"]
    assert config.text.hidden_size == build_section["roberta_config"]["hidden_size"]
    preprocess = _fixture_config()["input"]["preprocess"]
    assert ([config.eval_short_size], config.eval_max_size) == (
        preprocess["sizes"],
        preprocess["max_size"],
    )


def test_from_upstream_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ConfigError, match="with_box_refine"):
        SOCConfig.from_upstream({"with_box_refine": False})
    with pytest.raises(ConfigError, match="text_refer_loss"):
        SOCConfig.from_upstream({"text_refer_loss": False})
    with pytest.raises(ConfigError, match="two_stage"):
        SOCConfig.from_upstream({"DeformTransformer": {"two_stage": True}})
    with pytest.raises(ConfigError, match="unknown SOC option"):
        SOCConfig.from_upstream({"hidden_dim": 256})
    with pytest.raises(ConfigError, match="unknown VITA option"):
        SOCConfig.from_upstream({"VITA": {"window": 4}})
    with pytest.raises(ConfigError, match="backbone"):
        SOCConfig.from_upstream({"backbone": "resnet50"})


def test_public_release_names() -> None:
    public = SOCConfig.from_upstream({"VOC": {"enc_layers": 2}, "vl_loss": True})
    assert public == FULL.replace(vita=dataclasses.replace(FULL.vita, enc_layers=2))
    with pytest.raises(ConfigError, match="given twice"):
        SOCConfig.from_upstream({"VOC": {}, "VITA": {}})


def test_from_upstream_defaults() -> None:
    assert SOCConfig.from_upstream({"backbone": "video-swin-b", "VITA": {"num_frames": 8}}) == FULL
    tiny_backbone = SOCConfig.from_upstream({"backbone": "video-swin-t"}).backbone
    assert (tiny_backbone.embed_dim, tiny_backbone.depths) == (96, (2, 2, 6, 2))


def test_invalid_combinations() -> None:
    with pytest.raises(ConfigError, match="multiple of 128"):
        TINY.replace(transformer=DeformTransformerConfig(d_model=64, num_queries=4))
    with pytest.raises(ConfigError, match="input_dim"):
        TINY.replace(vita=VitaConfig(input_dim=256, num_frame_queries=4, num_queries=4))
    with pytest.raises(ConfigError, match="num_queries"):
        TINY.replace(vita=VitaConfig(input_dim=128, num_frame_queries=4, num_queries=5))
    with pytest.raises(ConfigError, match="num_feature_levels"):
        TINY.replace(
            transformer=DeformTransformerConfig(d_model=128, num_queries=4, num_feature_levels=3)
        )
