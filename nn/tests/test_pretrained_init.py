"""Initialisation from the public pretrained weights (rvos_nn.pretrained_init): a fake Kinetics
checkpoint and a fake Hugging Face roberta-base folder, written from a tiny model in upstream's
layouts, load back strictly; every way a file can be wrong is a readable error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rvos_core.errors import ConfigError
from rvos_nn.checkpoint import CheckpointMismatch
from rvos_nn.language_query import TINY_VALUES, LanguageQueryConfig
from rvos_nn.layers import VIDEO_SWIN_CONFIGS, build_video_swin
from rvos_nn.layers.video_text import LanguageQueryModel
from rvos_nn.pretrained_init import (
    BACKBONE_MODULE,
    KINETICS_FILES,
    PATCH_EMBED_WEIGHT,
    ROBERTA_FOLDER,
    init_from_pretrained,
    init_like_upstream,
    kinetics_file,
    load_kinetics_backbone,
    load_roberta,
    write_kinetics_checkpoint,
    write_roberta_folder,
)

KINETICS = "kinetics_tiny.pth"


def _model(seed: int) -> LanguageQueryModel:
    torch.manual_seed(seed)
    return LanguageQueryModel(config=LanguageQueryConfig(**TINY_VALUES), combine="multiply")


@pytest.fixture
def source() -> LanguageQueryModel:
    return _model(0)


@pytest.fixture
def pretrained(tmp_path: Path, source: LanguageQueryModel) -> Path:
    """A PRETRAINED folder with the source model's backbone and text encoder."""
    write_kinetics_checkpoint(source.get_submodule(BACKBONE_MODULE), tmp_path / KINETICS)
    write_roberta_folder(source.text_encoder, tmp_path / ROBERTA_FOLDER)
    return tmp_path


def _state(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_round_trip_fills_backbone_and_text_encoder(
    pretrained: Path, source: LanguageQueryModel
) -> None:
    target = _model(1)
    untouched = {k: v.clone() for k, v in target.state_dict().items()}
    report = init_from_pretrained(target, pretrained, backbone_file=KINETICS)
    assert report.backbone.ok and report.text.ok
    _assert_same(_state(target, "backbone."), _state(source, "backbone."))
    text = {k: v for k, v in _state(source, "text_encoder.").items() if ".pooler." not in k}
    _assert_same({k: v for k, v in _state(target, "text_encoder.").items() if k in text}, text)
    # everything else (the pooler included) keeps the target's own initialisation
    for key, value in target.state_dict().items():
        if not key.startswith("backbone.") and key not in text:
            assert torch.equal(value, untouched[key]), key


def test_report_counts_dropped_and_converted(pretrained: Path) -> None:
    report = init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)
    backbone, text = report.backbone, report.text
    assert backbone.container == "state_dict"
    assert backbone.matched == backbone.model_keys
    assert backbone.stored == backbone.matched + 4
    assert backbone.ignored == {
        "final-norm": ["norm.weight", "norm.bias"],
        "classification-head": ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"],
    }
    # 3 patch mergings x (reduction, norm weight, norm bias) move to downsamples.i
    assert backbone.renamed[r"backbone\.layers\.(\d+)\.downsample\."] == 9
    assert sum(backbone.renamed.values()) == backbone.stored - 2  # all but cls_head.*
    assert sorted(text.ignored["masked-lm-head"]) == ["lm_head.bias", "lm_head.dense.weight"]
    assert sorted(text.allowed_missing["pooler"]) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert text.matched == text.model_keys - 2
    shapes = "[8, 3, 2, 4, 4] -> [8, 3, 1, 4, 4]"
    assert report.converted == [f"{PATCH_EMBED_WEIGHT}: summed over its 2 time steps {shapes}"]
    formatted = report.format()
    assert "ignored by rule 'classification-head': 2 keys" in formatted
    assert "allowed missing by rule 'pooler': 2 keys" in formatted
    assert "converted backbone.patch_embed.proj.weight" in formatted


def test_patch_embedding_is_summed_over_time(tmp_path: Path, source: LanguageQueryModel) -> None:
    body = source.get_submodule(BACKBONE_MODULE)
    path = write_kinetics_checkpoint(body, tmp_path / "k.pth")
    checkpoint = torch.load(path, weights_only=True)
    weight = torch.randn(checkpoint["state_dict"][PATCH_EMBED_WEIGHT].shape)
    checkpoint["state_dict"][PATCH_EMBED_WEIGHT] = weight
    torch.save(checkpoint, path)
    target = _model(1).get_submodule(BACKBONE_MODULE)
    load_kinetics_backbone(target, path)
    torch.testing.assert_close(target.patch_embed.proj.weight, weight.sum(2, keepdim=True))


def test_pytorch_bin_folder_loads_too(tmp_path: Path, source: LanguageQueryModel) -> None:
    folder = write_roberta_folder(source.text_encoder, tmp_path / "roberta", safetensors=False)
    target = _model(1).text_encoder
    assert load_roberta(target, folder).ok
    torch.testing.assert_close(
        target.embeddings.word_embeddings.weight,
        source.text_encoder.embeddings.word_embeddings.weight,
    )


def test_upstream_file_names_by_architecture() -> None:
    with torch.device("meta"):
        bodies = {name: build_video_swin(config) for name, config in VIDEO_SWIN_CONFIGS.items()}
    assert kinetics_file(bodies["video_swin_b_p4w7"]) == (
        "swin_base_patch244_window877_kinetics600_22k.pth"
    )
    assert kinetics_file(bodies["video_swin_t_p4w7"]) == (
        "swin_tiny_patch244_window877_kinetics400_1k.pth"
    )
    assert {kinetics_file(b) for b in bodies.values()} == set(KINETICS_FILES.values())
    with pytest.raises(ConfigError, match=r"no Kinetics checkpoint is known .* embed_dim 8"):
        kinetics_file(_model(0).get_submodule(BACKBONE_MODULE))


# ---------------------------------------------------------------------------------------------
# Wrong files


def test_missing_kinetics_file_names_it(pretrained: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.pth: the Video-Swin Kinetics checkpoint is"):
        init_from_pretrained(_model(1), pretrained, backbone_file="absent.pth")


def test_a_file_without_backbone_keys_is_not_a_kinetics_checkpoint(
    pretrained: Path, source: LanguageQueryModel
) -> None:
    path = pretrained / "rvos.pth"
    torch.save({"model": source.state_dict()}, path)
    with pytest.raises(ConfigError, match=r"rvos\.pth: not a Video-Swin Kinetics checkpoint"):
        init_from_pretrained(_model(1), pretrained, backbone_file=path)


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_a_key_mismatch_is_reported_before_loading(pretrained: Path, change: str) -> None:
    path = pretrained / KINETICS
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["state_dict"]
    if change == "extra":
        state["backbone.layers.0.blocks.0.attn.gate"] = torch.zeros(1)
    elif change == "missing":
        del state["backbone.layers.1.blocks.1.mlp.fc2.bias"]
    else:
        state["backbone.patch_embed.norm.weight"] = torch.ones(5)
    torch.save(checkpoint, path)
    target = _model(1)
    before = target.get_submodule(BACKBONE_MODULE).patch_embed.proj.weight.clone()
    with pytest.raises(CheckpointMismatch) as error:
        init_from_pretrained(target, pretrained, backbone_file=KINETICS)
    expected = {"extra": "unexpected (1)", "missing": "missing (1)", "shape": "mis-shaped"}[change]
    assert expected in str(error.value)
    assert torch.equal(target.get_submodule(BACKBONE_MODULE).patch_embed.proj.weight, before)


def test_missing_roberta_files_are_named(pretrained: Path) -> None:
    folder = pretrained / ROBERTA_FOLDER
    (folder / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="roberta-base: the RoBERTa weights are missing"):
        init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"config\.json: the RoBERTa config is missing"):
        init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)


def test_a_config_of_another_encoder_is_refused(pretrained: Path) -> None:
    path = pretrained / ROBERTA_FOLDER / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(config | {"hidden_size": 768, "num_hidden_layers": 12}))
    with pytest.raises(ConfigError, match=r"config\.json: describes another text encoder.*768"):
        init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)
    path.write_text(json.dumps(config | {"model_type": "bert"}))
    with pytest.raises(ConfigError, match="not a RoBERTa config"):
        init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)


def test_a_damaged_safetensors_file_is_named(pretrained: Path) -> None:
    (pretrained / ROBERTA_FOLDER / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match=r"model\.safetensors: not a readable safetensors"):
        init_from_pretrained(_model(1), pretrained, backbone_file=KINETICS)


# ---------------------------------------------------------------------------------------------
# Upstream's initialisation of the modules that are not pretrained


def test_init_like_upstream_fills_heads_projections_and_pixel_decoder() -> None:
    model = _model(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    filled = init_like_upstream(model)
    prior_logit = -torch.log(torch.tensor(99.0))
    for head in model.class_embed:
        torch.testing.assert_close(head.bias, prior_logit.expand_as(head.bias))
    for i, head in enumerate(model.bbox_embed):
        assert not head.layers[-1].weight.any()
        expected = torch.tensor([0.0, 0.0, -2.0, -2.0] if i == 0 else [0.0] * 4)
        assert torch.equal(head.layers[-1].bias, expected)
    assert model.transformer.decoder.bbox_embed is model.bbox_embed
    for layer in [p[0] for p in model.input_proj] + list(model.controller.layers):
        assert not layer.bias.any()
        fans = layer.weight.shape[0] + layer.weight.shape[1]  # linear layers and 1 x 1 convs
        assert layer.weight.abs().max() <= (6 / fans) ** 0.5  # Xavier-uniform's bound
    conv = model.pixel_decoder.layer_2
    assert conv.weight.abs().max() <= (3 / conv.weight[0].numel()) ** 0.5  # Kaiming, a = 1
    assert "pixel_decoder.mask_features" in filled and "pixel_decoder.cross_attn_4" in filled
    assert not model.pixel_decoder.mask_features.bias.any()
    untouched = ("backbone.", "text_encoder.", "transformer.", "fusion_module.", "resizer.")
    for key, value in model.state_dict().items():
        if key.startswith(untouched) and not key.startswith("transformer.decoder.bbox_embed"):
            assert torch.equal(value, before[key]), key
