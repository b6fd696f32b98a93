"""The two backbones: parity with the upstream modules and the layout quirks they must keep."""

from __future__ import annotations

import pytest
import torch

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.parity import ParityCheck
from rvos_uninext.convnext import ConvNeXt, ConvNeXtConfig
from rvos_uninext.parity import convnext_parity, vit_parity
from rvos_uninext.vit import ViT, ViTConfig, absolute_position_embedding, relative_position_table


@pytest.mark.parity
@pytest.mark.parametrize(
    ("name", "handler"), [("uninext/vit", vit_parity), ("uninext/convnext", convnext_parity)]
)
def test_backbone_matches_upstream(name, handler):
    folder = parity_dir(name)
    check = ParityCheck(folder)
    handler(folder, check)
    assert check.ok, check.format()


@pytest.mark.parity
def test_vit_window_and_global_blocks_follow_the_fixture():
    import json

    config = json.loads((parity_dir("uninext/vit") / "config.json").read_text())
    model = ViT(config=ViTConfig.from_upstream(config))
    assert [i for i, b in enumerate(model.blocks) if b.window == 0] == config[
        "global_block_indexes"
    ]
    assert [i for i, b in enumerate(model.blocks) if b.window] == config["window_block_indexes"]


def test_vit_huge_keeps_the_twelve_block_window_list():
    """ViT-H has 32 blocks but only 8 window blocks: the list was written for a 12-block ViT."""
    with torch.device("meta"):
        model = ViT(config=ViTConfig.huge())
    assert [i for i, b in enumerate(model.blocks) if b.window] == [0, 1, 3, 4, 6, 7, 9, 10]
    assert sum(b.window == 0 for b in model.blocks) == 24
    # window blocks: 2 * 14 - 1 rows; global blocks: sized for 1024 / 16 = 64 tokens -> 127 rows
    assert model.blocks[10].attn.rel_pos_h.shape == (27, 80)
    assert model.blocks[11].attn.rel_pos_h.shape == (127, 80)


def test_vit_rejects_unsupported_upstream_arguments():
    with pytest.raises(ConfigError, match="use_rel_pos"):
        ViTConfig.from_upstream({"embed_dim": 64, "use_rel_pos": False})


def test_vit_position_embedding_resize_has_no_antialias():
    pos = torch.randn(1, 1 + 14 * 14, 8, generator=torch.Generator().manual_seed(0))
    grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    plain = torch.nn.functional.interpolate(grid, size=(5, 7), mode="bicubic", align_corners=False)
    smooth = torch.nn.functional.interpolate(grid, size=(5, 7), mode="bicubic", antialias=True)
    got = absolute_position_embedding(pos, (5, 7)).permute(0, 3, 1, 2)
    assert torch.equal(got, plain) and not torch.allclose(got, smooth)


def test_relative_position_table_by_hand():
    # 3 positions, a 5-row table used as is: entry [q, k] is row q - k + 2.
    table = torch.arange(5.0)[:, None]
    got = relative_position_table(3, table)[..., 0]
    assert got.tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]
    # 2 positions need 3 rows: a 5-row ramp 0..4 linearly resized to 3 rows (align_corners=False)
    # samples at 5/3 * (i + 0.5) - 0.5 = 1/3, 2, 11/3.
    resized = relative_position_table(2, table)[..., 0]
    assert torch.allclose(resized, torch.tensor([[2.0, 1 / 3], [11 / 3, 2.0]]))


def test_convnext_keeps_embedding_shaped_norm_and_gamma_keys():
    with torch.device("meta"):
        model = ConvNeXt(config=ConvNeXtConfig.large())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["stages.2.26.gamma.weight"] == (1, 768)
    assert shapes["stages.0.0.norm.weight.weight"] == (1, 192)
    assert shapes["downsample_layers.3.0.bias.weight"] == (1, 768)
    assert shapes["norm3.weight.weight"] == (1, 1536)
    assert "norm0.weight.weight" not in shapes


def test_convnext_channels_first_norm_is_the_hand_written_one():
    from rvos_uninext.convnext import LayerNorm

    norm = LayerNorm(3, eps=0.0, channels_first=True)
    x = torch.tensor([1.0, 2.0, 6.0]).view(1, 3, 1, 1)
    # mean 3, biased variance (4 + 1 + 9) / 3 = 14 / 3
    expected = (torch.tensor([-2.0, -1.0, 3.0]) / (14 / 3) ** 0.5).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), expected)
