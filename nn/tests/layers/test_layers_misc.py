"""Box helpers, MLP, early fusion and input projections."""

from __future__ import annotations

import math

import pytest
import torch

from rvos_nn.layers import (
    MLP,
    VisionLanguageFusion,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    input_projections,
    inverse_sigmoid,
    pad_videos,
)


def test_inverse_sigmoid_by_hand() -> None:
    x = torch.tensor([0.5, 0.75, 0.0, 1.0, 2.0])
    expected = torch.tensor([0.0, math.log(3.0), math.log(1e-5), -math.log(1e-5), -math.log(1e-5)])
    torch.testing.assert_close(inverse_sigmoid(x), expected)


def test_box_conversions_by_hand() -> None:
    cxcywh = torch.tensor([[0.5, 0.4, 0.2, 0.6]])
    xyxy = torch.tensor([[0.4, 0.1, 0.6, 0.7]])
    torch.testing.assert_close(box_cxcywh_to_xyxy(cxcywh), xyxy)
    torch.testing.assert_close(box_xyxy_to_cxcywh(xyxy), cxcywh)


def test_mlp_layers_and_relu_placement() -> None:
    mlp = MLP(input_dim=2, hidden_dim=3, output_dim=1, num_layers=2)
    assert [tuple(layer.weight.shape) for layer in mlp.layers] == [(3, 2), (1, 3)]
    with torch.no_grad():
        mlp.layers[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))
        mlp.layers[0].bias.zero_()
        mlp.layers[1].weight.fill_(1.0)
        mlp.layers[1].bias.fill_(-10.0)
    # hidden relu([2, -2, -3]) = [2, 0, 0]; output 2 - 10 (no relu on the last layer)
    assert mlp(torch.tensor([2.0, -3.0])).item() == -8.0


@pytest.mark.parametrize("combine", ["multiply", "add"])
def test_fusion_combines_with_attended_text(combine: str) -> None:
    torch.manual_seed(0)
    fusion = VisionLanguageFusion(d_model=8, nhead=2, combine=combine).eval()
    visual = torch.randn(5, 1, 8)
    word = torch.randn(1, 1, 8)  # a single word: attention returns its projected value
    attn = fusion.multihead_attn
    value = word[0, 0] @ attn.in_proj_weight[16:].T + attn.in_proj_bias[16:]
    attended = attn.out_proj(value)
    expected = visual * attended if combine == "multiply" else visual + attended
    torch.testing.assert_close(fusion(visual, word, None, torch.randn(1, 1, 8)), expected)
    with pytest.raises(ValueError):
        VisionLanguageFusion(d_model=8, nhead=2, combine="concat")  # type: ignore[arg-type]


def test_input_projections_layout() -> None:
    proj = input_projections(in_channels=[16, 32, 64], hidden_dim=32, num_feature_levels=5)
    shapes = {k: tuple(v.shape) for k, v in proj.state_dict().items() if k.endswith("0.weight")}
    assert shapes == {
        "0.0.weight": (32, 16, 1, 1),
        "1.0.weight": (32, 32, 1, 1),
        "2.0.weight": (32, 64, 1, 1),
        "3.0.weight": (32, 64, 3, 3),
        "4.0.weight": (32, 32, 3, 3),
    }
    out = proj[3](torch.zeros(1, 64, 5, 8))
    assert out.shape == (1, 32, 3, 4)


def test_pad_videos_mask() -> None:
    batch, mask = pad_videos([torch.ones(2, 3, 4, 5), torch.ones(3, 3, 2, 6)])
    assert batch.shape == (2, 3, 3, 4, 6) and mask.shape == (2, 3, 4, 6)
    assert mask[0, :2, :4, :5].logical_not().all() and mask[0, 2].all() and mask[0, :, :, 5].all()
    assert mask[1, :, :2].logical_not().all() and mask[1, :, 2:].all()
    assert batch.sum().item() == 3 * (2 * 4 * 5 + 3 * 2 * 6)
