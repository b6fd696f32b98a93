"""UNINEXT's training forward: the denoising queries against upstream's ``prepare_for_cdn`` (the
``dn`` entries of the fixture ``train_uninext``, with its recorded noise draws), the outputs the
criterion reads and where their gradients go, the learning-rate groups and the initialisation."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
from uninext_testlib import BUILDERS

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn import testing
from rvos_nn.checkpoint import CheckpointMismatch
from rvos_nn.text import UNINEXT_BERT_TOKENIZER
from rvos_nn.training import Clip
from rvos_train.losses import criterion, settings_for
from rvos_uninext.convnext import ConvNeXt
from rvos_uninext.entry import CONVNEXT_VARIANTS, VITH_VARIANTS
from rvos_uninext.pretrained_init import (
    BACKBONE_FILES,
    BACKBONE_MODULE,
    BERT_FOLDER,
    TEXT_MODULE,
    write_backbone_file,
    write_bert_folder,
)
from rvos_uninext.training import (
    HOOKS,
    NoiseDraws,
    denoising_attention_mask,
    denoising_queries,
    init_like_upstream,
    key_boxes,
    param_group,
)
from rvos_uninext.vit import ViT

NO_FILE = re.compile(r"norm\d\..+|fpn\d\..+|blocks\.\d+\.attn\.rel_pos_[hw]")
"""Backbone keys no pretrained file holds (ConvNeXt's output norms, ViTDet's pyramid and tables)."""


def fixture_cases() -> list[Path]:
    """Every ``case_*.pt`` of the fixture folder."""
    folder = parity_dir("train_uninext")
    paths = sorted(folder.glob("case_*.pt"))
    assert paths, f"no case_*.pt in {folder}"
    return paths


@pytest.mark.parity
def test_denoising_queries_match_upstream() -> None:
    for path in fixture_cases():
        check_denoising(torch.load(path, weights_only=True))


def check_denoising(case: dict) -> None:
    dn, config = case["dn"], case["config"]
    queries = denoising_queries(
        [t["boxes"] for t in case["targets"]["det_targets"]],
        dn["label_enc"],
        dn_number=config["dn_number"],
        queries=config["nq"],
        box_noise_scale=config["box_noise_scale"],
        draws=NoiseDraws(dn["rand_sign_raw"], dn["rand_part_raw"]),
    )
    assert queries is not None
    assert queries.content.shape[1] == dn["pad_size"] == dn["single_padding"] * dn["dn_num"]
    torch.testing.assert_close(queries.content, dn["input_query_label"], rtol=0, atol=0)
    torch.testing.assert_close(queries.boxes, dn["input_query_bbox"], rtol=1e-6, atol=1e-6)
    assert torch.equal(queries.self_attn_mask, dn["attn_mask"])


def test_denoising_mask_blocks_other_groups_and_hides_them_from_the_proposals() -> None:
    mask = denoising_attention_mask(groups=3, group_size=2, queries=4, device=torch.device("cpu"))
    assert mask.shape == (10, 10)
    assert mask[6:, :6].all() and not mask[:, 6:].any()
    assert not mask[2:4, 2:4].any() and mask[2:4, :2].all() and mask[2:4, 4:6].all()


def test_no_object_no_denoising_queries() -> None:
    empty = torch.zeros((0, 4))
    args = {"dn_number": 100, "queries": 20, "box_noise_scale": 1.0}
    assert denoising_queries([empty, empty], torch.zeros(2, 256), **args) is None


def test_key_box_is_the_exclusive_mask_box() -> None:
    clip = pair_clips(1)[0]
    torch.testing.assert_close(key_boxes(clip), torch.tensor([[0.5, 0.4375, 0.5, 0.375]]))


def pair_clips(count: int, seed: int = 0) -> list[Clip]:
    """(key, reference) clips of 64 x 96 and 64 x 80 with a box-shaped target in both frames."""
    sizes = [(64, 96), (64, 80)]
    clips = testing.training_clips(
        [sizes[i % 2] for i in range(count)], ["the left dog", "a red car"], length=2, seed=seed
    )
    boxed = []
    for clip in clips:
        h, w = clip.size
        masks = torch.zeros(2, h, w, dtype=torch.bool)
        masks[0, h // 4 : h // 4 + 24, w // 4 : w // 4 + w // 2] = True
        masks[1, h // 4 + 4 : h // 4 + 28, w // 4 + 2 : w // 4 + 2 + w // 2] = True
        boxed.append(dataclasses.replace(clip, masks=masks))
    return boxed


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return testing.tiny_tokenizer(tmp_path_factory.mktemp("bert"), None, UNINEXT_BERT_TOKENIZER)


def trained_outputs(kind: str, tokenizer) -> tuple[torch.nn.Module, dict, dict]:
    torch.manual_seed(0)
    model = BUILDERS[kind]("tiny")
    init_like_upstream(model)
    model.train()
    clips = pair_clips(2)
    outputs = HOOKS.forward(model, tokenizer, clips)
    loss = criterion("uninext", settings_for("uninext", {}, model.config.dec_layers))
    losses, _ = loss(outputs, loss.targets(clips))
    return model, outputs, losses


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_training_outputs_have_the_criterions_layout(kind: str, tokenizer) -> None:
    model, outputs, losses = trained_outputs(kind, tokenizer)
    config = model.config
    slots = 2 * config.dn_number  # one object per clip: dn_number groups of 2 slots
    total = slots + config.num_proposals
    assert len(outputs["pred_logits"]) == config.dec_layers
    for key, width in (("pred_logits", 1), ("pred_boxes", 4), ("pred_ious", 1)):
        assert all(t.shape == (2, total, width) for t in outputs[key]), key
    assert outputs["key_embeds"].shape == outputs["ref_embeds"].shape == (2, 20, 256)
    assert outputs["ref_boxes"].shape == (2, 20, 4) and not outputs["ref_scores"].requires_grad
    query = torch.tensor([3, 7])
    masks = outputs["mask_logits"](0, [(query, torch.zeros(2)), (query[:1], torch.zeros(1))])
    assert masks.shape == (3, 16, 24)  # 64 x 96 padded, stride 4
    # the mask branch's parameters are in the forward's graph (DDP sees them used)
    assert outputs["mask_features"].grad_fn is not None
    assert all(
        p.shape == (2, 20, model.detr.dynamic.num_gen_params) for p in outputs["mask_params"]
    )
    assert all(torch.isfinite(v) for v in losses.values())
    assert {"loss_ce_dn", "loss_reid", "loss_mask_0", "loss_giou_enc"} <= set(losses)


def test_gradients_reach_every_trained_part(tokenizer) -> None:
    """Every parameter but the transformer's zero-weighted resizer gets a gradient (the text
    encoder too, unless the config freezes it); the reference frames' pass reaches the reid head
    only."""
    model, outputs, losses = trained_outputs("convnext", tokenizer)
    sum(losses.values()).backward(retain_graph=True)
    missing = {name for name, p in model.named_parameters() if p.grad is None}
    assert missing == {n for n, _ in model.named_parameters() if ".transformer.resizer." in n}
    assert all(
        p.grad.abs().sum() > 0
        for name, p in model.named_parameters()
        if name.startswith(("detr.detr.backbone", "detr.resizer", "detr.reid_embed_head"))
        and p.grad is not None
        and p.dim() > 1
    )
    model.zero_grad(set_to_none=True)
    outputs["ref_embeds"].sum().backward()
    reached = {n for n, p in model.named_parameters() if p.grad is not None}
    assert reached and all(n.startswith("detr.reid_embed_head.") for n in reached)


def test_param_groups_are_build_optimizers() -> None:
    with torch.device("meta"):
        model = BUILDERS["convnext"]("tiny")
    names = [n for n, _ in model.named_parameters()]
    groups = {n: param_group(n) for n in names}
    config = model.config
    offsets = [n for n in names if "sampling_offsets" in n]
    # encoder, decoder and reid-head deformable layers, weight and bias each
    assert len(offsets) == 2 * (config.enc_layers + config.dec_layers + config.reid_layers)
    assert all(groups[n] == "linear_proj" for n in offsets)
    assert all(groups[n] == "backbone" for n in names if n.startswith("detr.detr.backbone."))
    assert all(groups[n] == "text_encoder" for n in names if n.startswith("text_encoder."))
    assert groups["detr.detr.transformer.encoder.vl_layers.0.b_attn.attn.v_proj.weight"] == "rest"
    assert groups["detr.resizer.fc.weight"] == groups["detr.controller.layers.0.weight"] == "rest"
    assert HOOKS.no_weight_decay is None and HOOKS.checkpoint_container == "model"


def test_upstream_init_sets_the_priors_and_zero_box_deltas() -> None:
    model = BUILDERS["vit"]("tiny")
    init_like_upstream(model)
    det = model.detr.detr
    prior = -math.log(0.99 / 0.01)
    assert all(head.bias0.item() == pytest.approx(prior) for head in det.class_embed[:-1])
    assert det.class_embed[-1].body.bias.item() == pytest.approx(prior)
    assert all(not box.layers[-1].weight.any() for box in det.bbox_embed)
    assert not model.detr.controller.layers[0].bias.any()


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_pretrained_files_load_strictly_as_upstream_converts_them(kind: str, tmp_path) -> None:
    """Upstream's backbone download and bert-base-uncased written from one tiny model load
    strictly into another: every backbone and text tensor is the source's (the output norms,
    feature pyramid and relative positions, which no file holds, keep their initialisation)."""
    torch.manual_seed(1)
    source, model = BUILDERS[kind]("tiny"), BUILDERS[kind]("tiny")
    body = source.get_submodule(BACKBONE_MODULE)
    write_backbone_file(body, tmp_path / BACKBONE_FILES[kind])
    write_bert_folder(source.get_submodule(TEXT_MODULE), tmp_path / BERT_FOLDER)
    report = HOOKS.pretrained_init(model, tmp_path)
    assert report.backbone.ok and report.text.ok
    assert "pooler" in report.text.ignored and "pretraining-heads" in report.text.ignored
    loaded, filled = model.state_dict(), 0
    for key, value in source.state_dict().items():
        inside = key.removeprefix(f"{BACKBONE_MODULE}.")
        if key.startswith(f"{TEXT_MODULE}.") or (inside != key and not NO_FILE.fullmatch(inside)):
            assert torch.equal(loaded[key], value), key
            filled += 1
    assert filled > 50


def test_a_foreign_backbone_file_is_refused_with_the_report(tmp_path) -> None:
    model = BUILDERS["convnext"]("tiny")
    vit = BUILDERS["vit"]("tiny").get_submodule(BACKBONE_MODULE)
    write_backbone_file(vit, tmp_path / BACKBONE_FILES["convnext"])
    write_bert_folder(model.get_submodule(TEXT_MODULE), tmp_path / BERT_FOLDER)
    with pytest.raises(CheckpointMismatch, match="blocks"):
        HOOKS.pretrained_init(model, tmp_path)
    with pytest.raises(ConfigError, match="backbone checkpoint is missing"):
        HOOKS.pretrained_init(model, tmp_path / "nothing")


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_stochastic_depth_acts_in_training_only(kind: str) -> None:
    """The released variants drop paths at upstream's rates (ViT-H 0.5, ConvNeXt-L 0.7, rising
    linearly); a backbone with a rate draws in training mode and is exact in evaluation mode."""
    full = {"vit": VITH_VARIANTS, "convnext": CONVNEXT_VARIANTS}[kind]["full"].backbone
    assert full.drop_path_rate == {"vit": 0.5, "convnext": 0.7}[kind]
    tiny = BUILDERS[kind]("tiny").config.backbone
    torch.manual_seed(0)
    trunk = (ViT if kind == "vit" else ConvNeXt)(
        config=dataclasses.replace(tiny, drop_path_rate=0.9)
    )
    plain = (ViT if kind == "vit" else ConvNeXt)(config=tiny)
    plain.load_state_dict(trunk.state_dict())
    x = torch.randn(2, 3, 64, 64)
    trunk.eval(), plain.eval()
    with torch.no_grad():
        ours, theirs = trunk(x), plain(x)
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        trunk.train()
        torch.manual_seed(1)
        first = trunk(x)["res5"]
        torch.manual_seed(2)
        assert not torch.equal(first, trunk(x)["res5"])
