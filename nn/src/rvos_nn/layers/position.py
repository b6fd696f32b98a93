"""Sine position embeddings of DETR, as used by the RVOS models (ReferFormer, MUTR, SOC).

Paper: Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020. Upstream:
``models/position_encoding.py`` of ReferFormer / MUTR in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d.

The 2-D version (``normalize=True``) offsets the cumulative counts by -0.5 before dividing; the 1-D
(text) version does not. Both keep upstream's float32 operation order, so values on fully padded
rows/columns (where the count is 0) match bit for bit as well. They take the padding mask only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _frequencies(num_pos_feats: int, temperature: float, device: torch.device) -> Tensor:
    index = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_pos_feats)


def _interleave_sin_cos(angles: Tensor) -> Tensor:
    """[..., F] angles -> [..., F] with sin on even and cos on odd channels."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


class _SineBase(nn.Module):
    def __init__(
        self,
        *,
        num_pos_feats: int,
        temperature: float = 10000,
        normalize: bool = False,
        scale: float | None = None,
    ):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale


class PositionEmbeddingSine2D(_SineBase):
    """2-D sine embedding of a padded image grid (y part first, then x part).

    ``PositionEmbeddingSine2D(num_pos_feats=d // 2, normalize=True)`` is what the models build.
    """

    def forward(self, mask: Tensor) -> Tensor:
        """mask: [N, H, W] bool, True on padding. Returns float32 [N, 2 * num_pos_feats, H, W]."""
        valid = ~mask
        y_embed = valid.cumsum(1, dtype=torch.float32)
        x_embed = valid.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        pos_x = _interleave_sin_cos(x_embed[:, :, :, None] / dim_t)
        pos_y = _interleave_sin_cos(y_embed[:, :, :, None] / dim_t)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class PositionEmbeddingSine1D(_SineBase):
    """1-D sine embedding of a padded token sequence (the text position of the RVOS models)."""

    def forward(self, mask: Tensor) -> Tensor:
        """mask: [B, L] bool, True on padding. Returns float32 [B, num_pos_feats, L]."""
        x_embed = (~mask).cumsum(1, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            x_embed = x_embed / (x_embed[:, -1:] + eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        return _interleave_sin_cos(x_embed[:, :, None] / dim_t).permute(0, 2, 1)
