"""UNINEXT's prediction heads on the RVOS path: VL alignment scores, still classifier, mask head.

Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d, ``UNINEXT/projects/UNINEXT/uninext/``
``models/deformable_detr/deformable_detr.py`` (``VL_Align``, ``Still_Classifier``) and
``models/ddetrs_dn.py`` (``MaskHeadSmallConv``, ``dynamic_mask_with_coords``).

Kept on purpose: the text side of ``VL_Align`` is L2-normalised and halved before its projection
and the logits are clamped to +-50000; the mask head fuses encoder memory /32 -> /16 -> /8 with
nearest upsampling and no norms; the dynamic convs take the **relative coordinates before** the
features (ReferFormer puts them after) and the coordinates are in pixels of the unpadded resized
image (not normalised); one grouped convolution per layer over a [queries x (2 + C)] copy of the
inputs, as upstream (mask logits reach hundreds: a factorised first layer changes them by ~1e-4).
Callers that need a few queries only (the top-1 per frame) pass just those.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.layers.mask_head import (
    aligned_bilinear,
    compute_locations,
    dynamic_param_counts,
    parse_dynamic_params,
)

_CLAMP = 50000.0


class VLAlign(nn.Module):
    """Query-to-text dot-product logits (upstream ``VL_Align``): [B, Q, C] x [B, L, C_text] -> [B, Q, L]."""

    def __init__(self, *, hidden_dim: int, lang_dim: int) -> None:
        super().__init__()
        self.dot_product_projection_text = nn.Linear(lang_dim, hidden_dim)
        self.log_scale = nn.Parameter(torch.zeros(1))
        self.bias_lang = nn.Parameter(torch.zeros(lang_dim))
        self.bias0 = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        text = F.normalize(text, p=2, dim=-1)
        tokens = self.dot_product_projection_text(text / 2.0)  # [B, L, C]
        token_bias = torch.matmul(text, self.bias_lang) + self.bias0  # [B, L]
        logits = torch.matmul(x, tokens.transpose(-1, -2)) / self.log_scale.exp()
        logits = logits + token_bias.unsqueeze(1)
        return logits.clamp(min=-_CLAMP, max=_CLAMP)


class StillClassifier(nn.Module):
    """Text-independent objectness of the encoder proposals (upstream ``Still_Classifier``)."""

    def __init__(self, *, hidden_dim: int) -> None:
        super().__init__()
        self.body = nn.Linear(hidden_dim, 1)

    def forward(self, x: Tensor, text: Tensor | None = None) -> Tensor:
        return self.body(x)


class MaskHeadSmallConv(nn.Module):
    """Encoder memory maps (/8, /16, /32) -> mask features [N, dim / 32, h/8, w/8]."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.lay1 = nn.Conv2d(dim, dim // 4, 3, padding=1)
        self.lay2 = nn.Conv2d(dim // 4, dim // 32, 3, padding=1)
        self.lay3 = nn.Conv2d(dim, dim, 3, padding=1)
        self.lay4 = nn.Conv2d(dim, dim, 3, padding=1)
        self.jia_dcn = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, maps: Sequence[Tensor]) -> Tensor:
        """maps: [N, dim, h_l, w_l] for strides 8, 16, 32 (in that order)."""
        x = F.relu(self.lay3(maps[-1]))
        x = maps[-2] + F.interpolate(x, size=maps[-2].shape[-2:], mode="nearest")
        x = F.relu(self.lay4(x))
        x = maps[-3] + F.interpolate(x, size=maps[-3].shape[-2:], mode="nearest")
        x = F.relu(self.jia_dcn(x))
        x = F.relu(self.lay1(x))
        return F.relu(self.lay2(x))


class DynamicMaskConv(nn.Module):
    """UNINEXT's CondInst head: per-query dynamic 1x1 convs over [rel. coords (x, y), features]."""

    def __init__(
        self, *, in_channels: int, channels: int, num_layers: int, feat_stride: int, out_stride: int
    ):
        super().__init__()
        self.channels = channels
        self.feat_stride = feat_stride
        self.upsample = feat_stride // out_stride
        self.weight_nums, self.bias_nums = dynamic_param_counts(
            in_channels=in_channels, channels=channels, num_layers=num_layers, rel_coord=True
        )
        self.num_gen_params = sum(self.weight_nums) + sum(self.bias_nums)

    def forward(self, features: Tensor, params: Tensor, points: Tensor) -> Tensor:
        """features [N, C, h, w]; params [N, K, P]; points [N, K, 2] (x, y) in resized-image pixels.

        Returns mask logits [N, K, h * up, w * up] (up = feat_stride / out_stride).
        """
        n, c, h, w = features.shape
        k = params.shape[1]
        locations = compute_locations(h, w, self.feat_stride, features.device).view(h, w, 2)
        rel = (
            (points[:, :, None, None, :] - locations).float().permute(0, 1, 4, 2, 3)
        )  # [N, K, 2, h, w]
        inputs = torch.cat(
            [rel.to(features.dtype), features[:, None].expand(-1, k, -1, -1, -1)], dim=2
        )
        x = inputs.reshape(1, n * k * (2 + c), h, w)
        weights, biases = parse_dynamic_params(
            params.flatten(0, 1), self.channels, self.weight_nums, self.bias_nums
        )
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            x = F.conv2d(F.relu(x) if index else x, weight, bias=bias, groups=n * k)
        logits = aligned_bilinear(x.reshape(n * k, 1, h, w), self.upsample)
        return logits.view(n, k, *logits.shape[-2:])
