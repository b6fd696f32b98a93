"""Sine position embeddings against a float64 evaluation of the formula written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rvos_nn.layers import PositionEmbeddingSine1D, PositionEmbeddingSine2D


def _sine(value: float, feats: int) -> list[float]:
    """Channels of one coordinate: sin on even, cos on odd, frequency 10000^(2 floor(i/2) / F)."""
    out = []
    for i in range(feats):
        angle = value / 10000 ** (2 * (i // 2) / feats)
        out.append(math.sin(angle) if i % 2 == 0 else math.cos(angle))
    return out


def test_2d_normalised_by_hand() -> None:
    mask = torch.zeros(1, 2, 3, dtype=torch.bool)
    mask[0, :, 2] = True  # last column is padding: 2 valid columns, 2 valid rows
    pos = PositionEmbeddingSine2D(num_pos_feats=4, normalize=True)(mask)
    assert pos.shape == (1, 8, 2, 3)
    eps, scale = 1e-6, 2 * math.pi
    for i in range(2):
        for j in range(2):
            y = (i + 1 - 0.5) / (2 + eps) * scale
            x = (j + 1 - 0.5) / (2 + eps) * scale
            expected = torch.tensor(_sine(y, 4) + _sine(x, 4), dtype=torch.float32)
            torch.testing.assert_close(pos[0, :, i, j], expected, rtol=0, atol=1e-6)


def test_2d_unnormalised_counts() -> None:
    pos = PositionEmbeddingSine2D(num_pos_feats=2)(torch.zeros(1, 1, 3, dtype=torch.bool))
    # y count 1 everywhere, x counts 1, 2, 3; F = 2: channel 0 sin(v), channel 1 cos(v)
    expected = torch.tensor(
        [
            [math.sin(1.0)] * 3,
            [math.cos(1.0)] * 3,
            [math.sin(v) for v in (1, 2, 3)],
            [math.cos(v) for v in (1, 2, 3)],
        ]
    )
    torch.testing.assert_close(pos[0, :, 0, :], expected, rtol=0, atol=1e-6)


def test_1d_has_no_half_offset() -> None:
    mask = torch.tensor([[False, False, False, True]])
    pos = PositionEmbeddingSine1D(num_pos_feats=6, normalize=True)(mask)
    assert pos.shape == (1, 6, 4)
    for t in range(3):
        x = (t + 1) / (3 + 1e-6) * 2 * math.pi
        torch.testing.assert_close(pos[0, :, t], torch.tensor(_sine(x, 6)), rtol=0, atol=1e-6)


def test_scale_without_normalize_is_refused() -> None:
    with pytest.raises(ValueError, match="normalize"):
        PositionEmbeddingSine2D(num_pos_feats=4, scale=1.0)
