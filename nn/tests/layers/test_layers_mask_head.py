"""Dynamic mask head pieces by hand and against a direct grouped-convolution evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rvos_nn.layers import (
    DynamicMaskHead,
    aligned_bilinear,
    compute_locations,
    dynamic_param_counts,
)


def test_param_counts_of_the_models() -> None:
    # ReferFormer / MUTR: mask_dim 256 (+2 coords) -> 8 -> 8 -> 1
    w, b = dynamic_param_counts(in_channels=256, channels=8, num_layers=3, rel_coord=True)
    assert (w, b) == ([258 * 8, 64, 8], [8, 8, 1])
    assert sum(w) + sum(b) == 2153
    # SOC: 8 channels (+2) -> 8 -> 8 -> 1 = 169
    w, b = dynamic_param_counts(in_channels=8, channels=8, num_layers=3, rel_coord=True)
    assert sum(w) + sum(b) == 169


def test_locations_are_pixel_centres_of_the_stride_grid() -> None:
    loc = compute_locations(2, 3, stride=4, device=torch.device("cpu"))
    assert loc.tolist() == [[2, 2], [6, 2], [10, 2], [2, 6], [6, 6], [10, 6]]


def test_aligned_bilinear() -> None:
    x = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
    assert aligned_bilinear(x, 1) is x
    up = aligned_bilinear(x, 2)
    # corner-aligned x2 on the replicate-padded grid, then shifted by one: row 0 is row 0 of the
    # interpolated grid, columns interleave the originals and their midpoints
    assert up.shape == (1, 1, 4, 4)
    assert up[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert up[0, 0, :, 0].tolist() == [0.0, 0.0, 2.0, 4.0]
    with pytest.raises(ValueError):
        aligned_bilinear(x, 0)


def _direct(features, params, refs, size, channels, counts):
    """Upstream's evaluation: repeat features per query, concatenate coordinates, grouped convs."""
    b, t, c, h, w = features.shape
    q = params.shape[2]
    loc = compute_locations(h, w, 4, features.device)
    pts = refs * torch.stack([size[:, 1], size[:, 0]], -1)[:, None, None, :]
    rel = (pts.reshape(b, t, q, 1, 1, 2) - loc.reshape(1, 1, 1, h, w, 2)).permute(0, 1, 2, 5, 3, 4)
    x = torch.cat([features[:, :, None].expand(b, t, q, c, h, w), rel], 3).reshape(1, -1, h, w)
    flat = params.flatten(0, 2)
    splits = torch.split_with_sizes(flat, counts[0] + counts[1], dim=1)
    n = len(counts[0])
    for i in range(n):
        out = 1 if i == n - 1 else channels
        x = F.conv2d(
            x,
            splits[i].reshape(-1, x.shape[1] // (b * t * q), 1, 1),
            splits[n + i].reshape(-1),
            groups=b * t * q,
        )
        if i < n - 1:
            x = F.relu(x)
        assert x.shape[1] == b * t * q * out
    return x.reshape(b, t, q, h, w)


def test_matches_direct_grouped_convolution() -> None:
    g = torch.Generator().manual_seed(0)
    head = DynamicMaskHead(in_channels=5, channels=4, num_layers=3)
    features = torch.randn(2, 3, 5, 6, 7, generator=g)
    params = torch.randn(2, 3, 2, head.num_gen_params, generator=g) * 0.3
    refs = torch.rand(2, 3, 2, 2, generator=g)
    size = torch.tensor([[24, 28], [20, 26]])
    expected = _direct(features, params, refs, size, 4, (head.weight_nums, head.bias_nums))
    torch.testing.assert_close(head(features, params, refs, size), expected, rtol=1e-5, atol=1e-5)


def test_upsamples_by_the_stride_ratio() -> None:
    head = DynamicMaskHead(
        in_channels=3,
        channels=2,
        num_layers=2,
        rel_coord=False,
        mask_feat_stride=8,
        mask_out_stride=4,
    )
    out = head(
        torch.randn(1, 1, 3, 4, 5),
        torch.randn(1, 1, 2, head.num_gen_params),
        torch.rand(1, 1, 2, 2),
        torch.tensor([[32, 40]]),
    )
    assert out.shape == (1, 1, 2, 8, 10)
