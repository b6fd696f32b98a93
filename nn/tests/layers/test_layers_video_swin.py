"""Video-Swin backbone and its backbone + position wrapper: upstream parity and hand checks."""

from __future__ import annotations

import pytest
import torch
from layers_testlib import load

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.layers import (
    VIDEO_SWIN_CONFIGS,
    VideoSwinBackbone,
    VideoSwinConfig,
    build_video_swin,
)
from rvos_nn.layers.video_swin import (
    effective_window,
    relative_position_index,
    shift_attention_mask,
)
from rvos_nn.parity import run_fixture


@pytest.mark.parity
def test_fixture_within_tolerance() -> None:
    check = run_fixture(parity_dir("video_swin"))
    assert check.ok, check.format()
    names = {c.name for c in check.comparisons}
    for case in load("video_swin", "inputs.pt"):
        assert f"{case}.stage0" in names
    assert "joiner.features[0]" in names


@pytest.mark.parity
def test_full_size_keys_and_shapes() -> None:
    config = load("video_swin", "config.json")
    full = VideoSwinConfig.from_upstream(config["full_size_values (video_swin_b_p4w7)"])
    assert full == VIDEO_SWIN_CONFIGS["video_swin_b_p4w7"]
    with torch.device("meta"):
        backbone = build_video_swin(full)
    ours = {k: list(v.shape) for k, v in backbone.state_dict().items()}
    expected = {e["key"]: e["shape"] for e in config["full_size_state_dict_keys"]}
    assert ours == expected


def test_unknown_upstream_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="window"):
        VideoSwinConfig.from_upstream({"embed_dim": 8, "windows": [8, 7, 7]})


def test_effective_window_shrinks_and_stops_shifting() -> None:
    assert effective_window((10, 90, 160), (8, 7, 7), (4, 3, 3)) == ((8, 7, 7), (4, 3, 3))
    assert effective_window((5, 90, 160), (8, 7, 7), (4, 3, 3)) == ((5, 7, 7), (0, 3, 3))
    assert effective_window((8, 7, 3), (8, 7, 7), (4, 3, 3)) == ((8, 7, 3), (0, 0, 0))


def test_relative_position_index_by_hand() -> None:
    # window (1, 2, 2): tokens (h, w) = (0,0), (0,1), (1,0), (1,1); table (1, 3, 3) row-major in
    # (dh + 1, dw + 1): index = (dh + 1) * 3 + (dw + 1) with d = token_i - token_j
    expected = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
    assert torch.equal(relative_position_index((1, 2, 2)), expected)


def test_shift_mask_separates_rolled_regions() -> None:
    # one axis of length 4, window 2, shift 1: regions [0, 2), [2, 3), [3, 4) -> window 1 holds
    # tokens 2 and 3 from different regions; window 0 holds tokens of one region
    mask = shift_attention_mask((1, 1, 4), (1, 1, 2), (0, 0, 1), torch.device("cpu"))
    assert mask.shape == (2, 2, 2)
    assert torch.equal(mask[0], torch.zeros(2, 2))
    assert torch.equal(mask[1], torch.tensor([[0.0, -100.0], [-100.0, 0.0]]))


def test_output_grid_sizes() -> None:
    backbone = VideoSwinBackbone(embed_dim=8, depths=[1, 1], num_heads=[1, 1]).eval()
    with torch.no_grad():
        stages = backbone(torch.randn(3, 3, 17, 30), num_frames=3)
    assert [tuple(s.shape) for s in stages] == [(3, 8, 5, 8), (3, 16, 3, 4)]
