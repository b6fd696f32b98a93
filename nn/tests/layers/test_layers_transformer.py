"""Deformable transformer, pixel decoder and dynamic mask head against the ReferFormer fixture's
intermediates (each component fed with the captured inputs of that component)."""

from __future__ import annotations

import pytest
import torch
from layers_testlib import (
    close,
    referformer_args,
    referformer_files,
    referformer_transformer,
    sub_state_dict,
)

from rvos_nn.layers import (
    CrossModalFPNDecoder,
    DynamicMaskHead,
    PositionEmbeddingSine2D,
    tokens_to_maps,
    valid_ratios,
)

INTERMEDIATE = {"rtol": 1e-4, "atol": 1e-5}
MASKS = {"rtol": 1e-4, "atol": 1e-3}


def _level_sizes(features: list[torch.Tensor], levels: int) -> list[tuple[int, int]]:
    """Backbone stages 1.. then extra levels of a 3x3 stride-2 conv with padding 1."""
    sizes = [(f.shape[-2], f.shape[-1]) for f in features[1:]]
    while len(sizes) < levels:
        h, w = sizes[-1]
        sizes.append(((h - 1) // 2 + 1, (w - 1) // 2 + 1))
    return sizes


@pytest.mark.parity
def test_transformer_matches_upstream() -> None:
    files, args = referformer_files(), referformer_args()
    inter, sd = files["intermediates"], files["state_dict"]
    transformer = referformer_transformer(args)
    transformer.load_state_dict(sub_state_dict(sd, "transformer."))
    frames = files["inputs"]["frames"].shape[0]
    sizes = _level_sizes(inter["backbone"]["features"], args["num_feature_levels"])
    srcs = [
        tokens_to_maps(f, frames, h, w)
        for f, (h, w) in zip(inter["fusion_module"], sizes, strict=True)
    ]
    masks = [torch.zeros(frames, h, w, dtype=torch.bool) for h, w in sizes]
    position = PositionEmbeddingSine2D(num_pos_feats=args["hidden_dim"] // 2, normalize=True)
    sentence = inter["resizer"][1]
    tgt = sentence[:, None, :].expand(frames, args["num_queries"], -1)
    with torch.no_grad():
        out = transformer.eval()(
            srcs, masks, [position(m) for m in masks], tgt, sd["query_embed.weight"]
        )
    expected = inter["transformer"]
    close(out.hs, expected["hs"], **INTERMEDIATE)
    close(out.init_reference, expected["init_reference"], **INTERMEDIATE)
    close(out.inter_references, expected["inter_references"], **INTERMEDIATE)
    assert len(out.memory) == len(expected["memory"])
    for ours, theirs in zip(out.memory, expected["memory"], strict=True):
        close(ours, theirs, **INTERMEDIATE)


@pytest.mark.parity
def test_pixel_decoder_matches_upstream() -> None:
    files, args = referformer_files(), referformer_args()
    inter = files["intermediates"]
    features = inter["backbone"]["features"]
    d = args["hidden_dim"]
    decoder = CrossModalFPNDecoder(
        feature_channels=[features[0].shape[1]] + [d] * (len(features) - 1),
        conv_dim=d,
        mask_dim=args["mask_dim"],
        dim_feedforward=args["dim_feedforward"],
    )
    decoder.load_state_dict(sub_state_dict(files["state_dict"], "pixel_decoder."))
    masks = [torch.zeros(f.shape[0], *f.shape[-2:], dtype=torch.bool) for f in features]
    position = PositionEmbeddingSine2D(num_pos_feats=d // 2, normalize=True)
    maps = [features[0], *inter["transformer"]["memory"]]
    with torch.no_grad():
        out = decoder.eval()(
            maps,
            masks,
            [position(m) for m in masks],
            inter["resizer"][0],
            files["inputs"]["text_pad_mask"],
            features[0].shape[0],
        )
    close(out, inter["pixel_decoder"], **INTERMEDIATE)


@pytest.mark.parity
def test_dynamic_mask_head_matches_upstream_every_layer() -> None:
    files, args = referformer_files(), referformer_args()
    inter, outputs = files["intermediates"], files["outputs"]
    head = DynamicMaskHead(
        in_channels=args["mask_dim"],
        channels=args["dynamic_mask_channels"],
        num_layers=args["controller_layers"],
        rel_coord=args["rel_coord"],
    )
    per_layer = [a["pred_masks"] for a in outputs["aux_outputs"]] + [outputs["pred_masks"]]
    references = inter["transformer"]["inter_references"]
    assert len(per_layer) == len(inter["controller"]) == references.shape[0]
    for params, refs, expected in zip(inter["controller"], references, per_layer, strict=True):
        logits = head(
            inter["pixel_decoder"][None],
            params[None],
            refs[None, ..., :2],
            files["inputs"]["size"][None],
        )
        close(logits, expected, **MASKS)


def test_valid_ratios_by_hand() -> None:
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 3:, :] = True
    mask[0, :, 4:] = True
    assert torch.equal(valid_ratios(mask), torch.tensor([[4 / 5, 3 / 4]]))
