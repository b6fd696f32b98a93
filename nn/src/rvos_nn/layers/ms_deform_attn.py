"""Multi-scale deformable attention (Deformable DETR), pure PyTorch.

Paper: Zhu et al., "Deformable DETR: Deformable Transformers for End-to-End Object Detection",
ICLR 2021. Upstream: fundamentalvision/Deformable-DETR ``models/ops``, vendored unchanged by
ReferFormer, MUTR and SOC in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (``*/models/ops``).

Differences from upstream: the compiled CUDA kernel is replaced by ``grid_sample`` (upstream's own
reference path, whose summation order is kept); batch elements are sampled in chunks, which
bounds the temporary memory; the sampling always runs in float32, also under autocast (as UNINEXT's copy forces); the level start index is not an argument
(only the CUDA kernel reads it); levels are given as Python ``(H, W)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SpatialShapes = Sequence[tuple[int, int]]
# Samples held at once (all levels of a batch chunk; 2**25 float32 = 128 MiB).
SAMPLED_ELEMENTS = 1 << 25


def ms_deform_attn_core(
    value: Tensor, spatial_shapes: SpatialShapes, locations: Tensor, weights: Tensor
) -> Tensor:
    """Bilinear sampling of every level at the given locations, weighted and summed.

    Args:
        value: [N, S, M, D], S = sum of H_l * W_l; each level flattened row-major, levels in order.
        spatial_shapes: L pairs (H_l, W_l).
        locations: [N, Lq, M, L, P, 2], (x, y) in [0, 1] relative to each level (0 = left edge of
            the first pixel, 1 = right edge of the last); outside samples read zeros.
        weights: [N, Lq, M, L, P] attention weights.

    Returns:
        [N, Lq, M * D] (channel m * D + d), computed in float32 and returned in ``value``'s dtype.
    """
    dtype = value.dtype
    n, _, heads, dim = value.shape
    num_queries, points = locations.shape[1], locations.shape[4]
    levels = len(spatial_shapes)
    chunk = max(1, SAMPLED_ELEMENTS // (heads * dim * num_queries * levels * points))
    parts = []
    with torch.autocast(device_type=value.device.type, enabled=False):
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            sampled = _sample_levels(
                value[part].float(), spatial_shapes, locations[part].float(), weights[part].float()
            )
            parts.append(sampled.to(dtype))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _sample_levels(
    value: Tensor, spatial_shapes: SpatialShapes, locations: Tensor, weights: Tensor
) -> Tensor:
    n, _, heads, dim = value.shape
    _, num_queries, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1
    sampled = []
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        level_value = value[:, start : start + height * width]
        level_value = level_value.permute(0, 2, 3, 1).reshape(n * heads, dim, height, width)
        grid = grids[:, :, :, level].transpose(1, 2).reshape(n * heads, num_queries, points, 2)
        sampled.append(
            F.grid_sample(
                level_value, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )  # [N*M, D, Lq, P]
        start += height * width
    # one sum over the L*P samples, in upstream's order (levels stacked, then flattened)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # [N*M, D, Lq, L*P]
    flat_weights = weights.transpose(1, 2).reshape(n * heads, 1, num_queries, levels * points)
    out = (stacked * flat_weights).sum(-1)
    return out.view(n, heads * dim, num_queries).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention with upstream parameter names.

    Parameters: ``sampling_offsets`` (d_model -> heads*levels*points*2), ``attention_weights``
    (d_model -> heads*levels*points), ``value_proj`` and ``output_proj`` (d_model -> d_model).
    """

    def __init__(
        self, *, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4
    ):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Upstream initialisation: zero offsets weights, radial offset grid, uniform attention."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        device = self.sampling_offsets.bias.device
        thetas = torch.arange(self.n_heads, dtype=torch.float32, device=device) * (
            2.0 * math.pi / self.n_heads
        )
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32, device=device).view(
            1, 1, -1, 1
        )
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        spatial_shapes: SpatialShapes,
        padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Attend from every query to P points per head and level around its reference.

        Args:
            query: [N, Lq, C].
            reference_points: [N, Lq, L, 2] points (x, y) or [N, Lq, L, 4] boxes (cx, cy, w, h),
                normalised to each level (0..1, padding included).
            input_flatten: [N, S, C] the levels, flattened and concatenated.
            spatial_shapes: L pairs (H_l, W_l).
            padding_mask: [N, S] bool, True on padding (their values are zeroed) or None.

        Returns:
            output [N, Lq, C], sampling locations [N, Lq, M, L, P, 2] (float32) and attention
            weights [N, Lq, M, L, P] (float32).
        """
        n, num_queries, _ = query.shape
        value = self.value_proj(input_flatten)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, -1, self.n_heads, self.d_model // self.n_heads)
        shape = (n, num_queries, self.n_heads, self.n_levels, self.n_points)
        offsets = self.sampling_offsets(query).float().view(*shape, 2)
        weights = self.attention_weights(query).float().view(n, num_queries, self.n_heads, -1)
        weights = F.softmax(weights, -1).view(shape)
        locations = self._locations(reference_points.float(), offsets, spatial_shapes)
        output = ms_deform_attn_core(value, spatial_shapes, locations, weights)
        return self.output_proj(output), locations, weights

    def _locations(
        self, reference: Tensor, offsets: Tensor, spatial_shapes: SpatialShapes
    ) -> Tensor:
        if reference.shape[-1] == 2:
            normalizer = torch.tensor(
                [[w, h] for h, w in spatial_shapes], dtype=torch.float32, device=offsets.device
            )
            return (
                reference[:, :, None, :, None, :]
                + offsets / normalizer[None, None, None, :, None, :]
            )
        if reference.shape[-1] == 4:
            centre = reference[:, :, None, :, None, :2]
            size = reference[:, :, None, :, None, 2:]
            return centre + offsets / self.n_points * size * 0.5
        raise ValueError(f"reference_points must end in 2 or 4 values, got {reference.shape[-1]}")
