"""Deformable DETR transformer, the ReferFormer variant shared by ReferFormer, MUTR and SOC.

Paper: Zhu et al., "Deformable DETR", ICLR 2021; variant of Wu et al., "Language as Queries for
Referring Video Object Segmentation" (ReferFormer), CVPR 2022. Upstream:
``ReferFormer/models/deformable_transformer.py`` in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d
(MUTR's and SOC's copies compute the same). Key layout: ``level_embed``,
``encoder.layers.i.{self_attn, norm1, linear1, linear2, norm2}``,
``decoder.layers.i.{cross_attn, norm1, self_attn, norm2, linear1, linear2, norm3}``,
``reference_points``, and ``decoder.bbox_embed.i`` when the model assigns its box heads for
iterative refinement (then stored twice in checkpoints, as upstream).

The variant: the decoder's content queries come from the caller (``tgt``, e.g. the sentence
feature), the positional queries from ``query_embed``; initial references are 2-D points
``sigmoid(reference_points(query_embed))``; the decoder always returns every layer, and the encoder
memory is returned as maps for the first ``num_feature_levels - 1`` levels (for a pixel decoder).

Differences: no two-stage branch (unused by the three models); the decoder's top-30 sampling
points (kept upstream for visualisation only) are not computed. The decoder self-attention keeps
upstream's explicit path (``need_weights`` left on): the fixtures hold its rounding, which the fused
kernel does not reproduce.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.layers.box import inverse_sigmoid
from rvos_nn.layers.chunking import rowwise
from rvos_nn.layers.ms_deform_attn import MSDeformAttn, SpatialShapes

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def input_projections(
    *, in_channels: Sequence[int], hidden_dim: int, num_feature_levels: int
) -> nn.ModuleList:
    """``input_proj.i``: 1x1 conv + GroupNorm(32) per backbone level used (``in_channels``), then
    3x3 stride-2 conv + GroupNorm(32) for each extra level (the first reads the last backbone map,
    the next ones the previous extra level)."""
    projections = [
        nn.Sequential(nn.Conv2d(c, hidden_dim, kernel_size=1), nn.GroupNorm(32, hidden_dim))
        for c in in_channels
    ]
    source = in_channels[-1]
    for _ in range(num_feature_levels - len(in_channels)):
        projections.append(
            nn.Sequential(
                nn.Conv2d(source, hidden_dim, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(32, hidden_dim),
            )
        )
        source = hidden_dim
    return nn.ModuleList(projections)


class TransformerOutput(NamedTuple):
    """hs: [L, N, Q, C] decoder states per layer; memory: [N, C, h_l, w_l] encoder maps of the
    first num_feature_levels - 1 levels; init_reference: [N, Q, 2]; inter_references: [L, N, Q, 4]
    (or 2 without box refinement), the references after each layer."""

    hs: Tensor
    memory: list[Tensor]
    init_reference: Tensor
    inter_references: Tensor


def valid_ratios(mask: Tensor) -> Tensor:
    """bool [N, H, W] (True = padding) -> [N, 2] valid fraction (w, h) from the first row/col."""
    _, h, w = mask.shape
    valid_h = torch.sum(~mask[:, :, 0], 1).float() / h
    valid_w = torch.sum(~mask[:, 0, :], 1).float() / w
    return torch.stack([valid_w, valid_h], -1)


class DeformableTransformerEncoderLayer(nn.Module):
    """Deformable self-attention and FFN, post-norm."""

    def __init__(
        self,
        *,
        d_model: int,
        d_ffn: int,
        dropout: float,
        activation: str,
        n_levels: int,
        n_heads: int,
        n_points: int,
    ):
        super().__init__()
        self.self_attn = MSDeformAttn(
            d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points
        )
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = _ACTIVATIONS[activation]
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: SpatialShapes,
        padding_mask: Tensor | None,
    ) -> Tensor:
        """src, pos: [N, S, C]; reference_points: [N, S, L, 2]. Returns [N, S, C]."""
        attended = self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)[0]
        src = self.norm1(src + self.dropout1(attended))
        return rowwise(self._ffn, src)

    def _ffn(self, src: Tensor) -> Tensor:
        ffn = self.linear2(self.dropout2(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class DeformableTransformerDecoderLayer(nn.Module):
    """Self-attention (``nn.MultiheadAttention``), deformable cross-attention, FFN; post-norm."""

    def __init__(
        self,
        *,
        d_model: int,
        d_ffn: int,
        dropout: float,
        activation: str,
        n_levels: int,
        n_heads: int,
        n_points: int,
    ):
        super().__init__()
        self.cross_attn = MSDeformAttn(
            d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points
        )
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = _ACTIVATIONS[activation]
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        src: Tensor,
        spatial_shapes: SpatialShapes,
        padding_mask: Tensor | None,
        self_attn_mask: Tensor | None = None,
    ) -> Tensor:
        """tgt, query_pos: [N, Q, C]; reference_points: [N, Q, L, 2 or 4]; src: [N, S, C];
        self_attn_mask: bool [Q, Q], True where query i may not attend to query j (DINO's
        denoising groups), or None."""
        q = (tgt + query_pos).transpose(0, 1)
        # need_weights=True (the default upstream calls): the explicit matmul-softmax path, whose
        # rounding the parity fixtures hold (the fused kernel differs by ~1e-6 per layer)
        attended = self.self_attn(q, q, tgt.transpose(0, 1), attn_mask=self_attn_mask)[0]
        attended = attended.transpose(0, 1)
        tgt = self.norm2(tgt + self.dropout2(attended))
        attended = self.cross_attn(
            tgt + query_pos, reference_points, src, spatial_shapes, padding_mask
        )[0]
        tgt = self.norm1(tgt + self.dropout1(attended))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(ffn))


class DeformableTransformerEncoder(nn.Module):
    def __init__(self, layer: DeformableTransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    @staticmethod
    def reference_points(spatial_shapes: SpatialShapes, ratios: Tensor) -> Tensor:
        """Pixel centres of every level, normalised by the valid size: [N, S, L, 2]."""
        points = []
        for level, (h, w) in enumerate(spatial_shapes):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=ratios.device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=ratios.device),
                indexing="ij",
            )
            ref_y = ref_y.reshape(-1)[None] / (ratios[:, None, level, 1] * h)
            ref_x = ref_x.reshape(-1)[None] / (ratios[:, None, level, 0] * w)
            points.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(points, 1)[:, :, None] * ratios[:, None]

    def forward(
        self,
        src: Tensor,
        spatial_shapes: SpatialShapes,
        ratios: Tensor,
        pos: Tensor,
        padding_mask: Tensor | None,
    ) -> Tensor:
        """src, pos: [N, S, C]; ratios: [N, L, 2]. Returns the memory [N, S, C]."""
        reference_points = self.reference_points(spatial_shapes, ratios)
        for layer in self.layers:
            src = layer(src, pos, reference_points, spatial_shapes, padding_mask)
        return src


class DeformableTransformerDecoder(nn.Module):
    """Decoder layers with optional iterative box refinement through ``bbox_embed``."""

    def __init__(self, layer: DeformableTransformerDecoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.bbox_embed: nn.ModuleList | None = None

    def forward(
        self,
        tgt: Tensor,
        reference_points: Tensor,
        src: Tensor,
        spatial_shapes: SpatialShapes,
        ratios: Tensor,
        query_pos: Tensor,
        padding_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Returns the states [L, N, Q, C] and the references after each layer [L, N, Q, 2|4]."""
        states, references = [], []
        for index, layer in enumerate(self.layers):
            scale = torch.cat([ratios, ratios], -1) if reference_points.shape[-1] == 4 else ratios
            tgt = layer(
                tgt,
                query_pos,
                reference_points[:, :, None] * scale[:, None],
                src,
                spatial_shapes,
                padding_mask,
            )
            if self.bbox_embed is not None:
                reference_points = self._refine(self.bbox_embed[index](tgt), reference_points)
            states.append(tgt)
            references.append(reference_points)
        return torch.stack(states), torch.stack(references)

    @staticmethod
    def _refine(delta: Tensor, reference: Tensor) -> Tensor:
        """New box references: sigmoid(delta + inverse_sigmoid(ref)) (a 2-D ref moves the centre)."""
        if reference.shape[-1] == 4:
            return (delta + inverse_sigmoid(reference)).sigmoid().detach()
        centre = delta[..., :2] + inverse_sigmoid(reference)
        return torch.cat([centre, delta[..., 2:]], -1).sigmoid().detach()


class DeformableTransformer(nn.Module):
    """Deformable encoder over all levels of every frame + decoder over per-frame queries."""

    def __init__(
        self,
        *,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 4,
        num_decoder_layers: int = 4,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        num_feature_levels: int = 4,
        dec_n_points: int = 4,
        enc_n_points: int = 4,
    ):
        super().__init__()
        self.d_model = d_model
        self.num_feature_levels = num_feature_levels
        common = {
            "d_model": d_model,
            "d_ffn": dim_feedforward,
            "dropout": dropout,
            "activation": activation,
        }
        levels = {"n_levels": num_feature_levels, "n_heads": nhead}
        self.encoder = DeformableTransformerEncoder(
            DeformableTransformerEncoderLayer(**common, **levels, n_points=enc_n_points),
            num_encoder_layers,
        )
        self.decoder = DeformableTransformerDecoder(
            DeformableTransformerDecoderLayer(**common, **levels, n_points=dec_n_points),
            num_decoder_layers,
        )
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Upstream initialisation (Xavier everywhere, deformable attention's own, normal levels)."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    def forward(
        self,
        srcs: Sequence[Tensor],
        masks: Sequence[Tensor],
        pos_embeds: Sequence[Tensor],
        tgt: Tensor,
        query_embed: Tensor,
    ) -> TransformerOutput:
        """Encode the levels and decode the queries.

        Args:
            srcs: per level [N, C, h_l, w_l] (N = frames of all videos).
            masks: per level bool [N, h_l, w_l], True on padding.
            pos_embeds: per level [N, C, h_l, w_l].
            tgt: [N, Q, C] content queries.
            query_embed: [Q, C] positional queries.
        """
        shapes = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        mask = torch.cat([m.flatten(1) for m in masks], 1)
        pos = torch.cat(
            [
                p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1)
                for i, p in enumerate(pos_embeds)
            ],
            1,
        )
        ratios = torch.stack([valid_ratios(m) for m in masks], 1)
        memory = self.encoder(src, shapes, ratios, pos, mask)
        query_pos = query_embed.unsqueeze(0).expand(tgt.shape[0], -1, -1)
        init_reference = self.reference_points(query_pos).sigmoid()
        hs, references = self.decoder(tgt, init_reference, memory, shapes, ratios, query_pos, mask)
        return TransformerOutput(hs, self._memory_maps(memory, shapes), init_reference, references)

    def _memory_maps(self, memory: Tensor, shapes: SpatialShapes) -> list[Tensor]:
        maps, start = [], 0
        n, _, c = memory.shape
        for h, w in shapes[: self.num_feature_levels - 1]:
            maps.append(
                memory[:, start : start + h * w]
                .reshape(n, h, w, c)
                .permute(0, 3, 1, 2)
                .contiguous()
            )
            start += h * w
        return maps
