"""Parity of the two backbones with the upstream modules (shared/parity/uninext/{vit,convnext})."""

from __future__ import annotations

import json

import pytest
import torch

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_uninext.convnext import ConvNeXt, ConvNeXtConfig
from rvos_uninext.vit import ViT, ViTConfig, absolute_position_embedding

ATOL = RTOL = 1e-5


def _load(folder, name):
    return torch.load(folder / name, map_location="cpu", weights_only=True)


def _build_vit():
    folder = parity_dir("uninext/vit")
    config = json.loads((folder / "config.json").read_text())
    model = ViT(config=ViTConfig.from_upstream(config)).eval()
    model.load_state_dict(_load(folder, "state_dict.pt"), strict=True)
    return folder, config, model


@pytest.mark.parity
def test_vit_pyramid_matches_upstream():
    folder, _, model = _build_vit()
    inputs, outputs = _load(folder, "inputs.pt"), _load(folder, "outputs.pt")
    with torch.no_grad():
        for name, x in inputs.items():
            got = model(x)
            assert set(got) == set(outputs[name])
            for level, expected in outputs[name].items():
                torch.testing.assert_close(got[level], expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parity
def test_vit_blocks_and_position_embedding_match_upstream():
    folder, _, model = _build_vit()
    x0 = _load(folder, "inputs.pt")["x0"]
    steps = _load(folder, "intermediates_x0.pt")
    with torch.no_grad():
        tokens = model.patch_embed(x0)
        torch.testing.assert_close(tokens, steps["patch_embed"], atol=ATOL, rtol=RTOL)
        grid = (tokens.shape[1], tokens.shape[2])
        pos = absolute_position_embedding(model.pos_embed, grid)
        torch.testing.assert_close(pos, steps["abs_pos_resized"], atol=ATOL, rtol=RTOL)
        x = steps["patch_embed"] + steps["abs_pos_resized"]
        for i, block in enumerate(model.blocks):
            x = block(steps[f"block{i - 1}"] if i else x)
            torch.testing.assert_close(x, steps[f"block{i}"], atol=ATOL, rtol=RTOL)


@pytest.mark.parity
def test_vit_window_and_global_blocks_follow_the_upstream_list():
    _, config, model = _build_vit()
    global_blocks = [i for i, block in enumerate(model.blocks) if block.window == 0]
    assert global_blocks == config["global_block_indexes"]
    window_blocks = [i for i, block in enumerate(model.blocks) if block.window]
    assert window_blocks == config["window_block_indexes"]


def test_vit_huge_keeps_the_twelve_block_window_list():
    """ViT-H has 32 blocks and only 8 window blocks: the list was written for a 12-block ViT."""
    with torch.device("meta"):
        model = ViT(config=ViTConfig.huge())
    windows = [i for i, block in enumerate(model.blocks) if block.window]
    assert windows == [0, 1, 3, 4, 6, 7, 9, 10]
    assert sum(block.window == 0 for block in model.blocks) == 24
    assert model.blocks[11].attn.rel_pos_h.shape == (127, 80)
    assert model.blocks[10].attn.rel_pos_h.shape == (27, 80)


def test_vit_rejects_unsupported_upstream_arguments():
    with pytest.raises(ConfigError, match="use_rel_pos"):
        ViTConfig.from_upstream({"embed_dim": 64, "use_rel_pos": False})


def test_vit_position_embedding_resize_has_no_antialias():
    """Downscaling a 14x14 grid: plain bicubic, not torch's antialiased bicubic."""
    pos = torch.randn(1, 1 + 14 * 14, 8, generator=torch.Generator().manual_seed(0))
    grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    plain = torch.nn.functional.interpolate(grid, size=(5, 7), mode="bicubic", align_corners=False)
    got = absolute_position_embedding(pos, (5, 7)).permute(0, 3, 1, 2)
    assert torch.equal(got, plain)


@pytest.mark.parity
def test_convnext_matches_upstream():
    folder = parity_dir("uninext/convnext")
    config = json.loads((folder / "config.json").read_text())
    model = ConvNeXt(config=ConvNeXtConfig.from_upstream(config)).eval()
    model.load_state_dict(_load(folder, "state_dict.pt"), strict=True)
    inputs, outputs = _load(folder, "inputs.pt"), _load(folder, "outputs.pt")
    with torch.no_grad():
        for name, x in inputs.items():
            got = model(x)
            assert set(got) == set(outputs[name])
            for level, expected in outputs[name].items():
                torch.testing.assert_close(got[level], expected, atol=ATOL, rtol=RTOL)
        for name, levels in _load(folder, "outputs_res2_trunk.pt").items():
            stage0 = model.forward_stages(inputs[name])[0]
            torch.testing.assert_close(stage0, levels["res2"], atol=ATOL, rtol=RTOL)


def test_convnext_keeps_embedding_shaped_norm_and_gamma_keys():
    with torch.device("meta"):
        model = ConvNeXt(config=ConvNeXtConfig.large())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["stages.2.26.gamma.weight"] == (1, 768)
    assert shapes["stages.0.0.norm.weight.weight"] == (1, 192)
    assert shapes["downsample_layers.3.0.bias.weight"] == (1, 768)
    assert shapes["norm3.weight.weight"] == (1, 1536)
    assert "norm0.weight.weight" not in shapes
