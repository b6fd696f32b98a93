"""UNINEXT's DINO-style two-stage deformable transformer with early vision-language fusion.

Papers: Zhang et al., "DINO: DETR with Improved DeNoising Anchor Boxes" (ICLR 2023); Zhu et al.,
"Deformable DETR" (ICLR 2021); Yan et al., UNINEXT (CVPR 2023). Upstream:
RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d,
``UNINEXT/projects/UNINEXT/uninext/models/deformable_detr/deformable_transformer_dino.py``
(``DeformableTransformerVLDINO`` and its encoder / decoder / ``DeformableReidHead``).

Inference path only: the encoder runs the VL fusion layer(s) before the first deformable layer(s)
(text tokens are updated too); encoder proposals are scored by the still classifier
(``decoder.class_embed[num_layers]``), the top-K boxes become the decoder's references; the decoder
content is the learned ``tgt_embed`` (``DECOUPLE_TGT`` + ``STILL_TGT_FOR_BOTH``); query positions
come from a 512-d sine embedding of the (valid-ratio scaled) boxes through ``ref_point_head``;
box refinement with look-forward-twice. Deformable layers are rvos_core's (same keys as upstream).

In training (``denoising`` given) DINO's contrastive denoising queries (rvos_uninext.training)
precede the proposals, with their self-attention mask; each layer's refined boxes reach the next
layer detached, as upstream's decoder does (inference is unchanged by the detach).

Differences: upstream adds
``0.0 * resizer(text)`` to the decoder content, which changes nothing numerically, so ``resizer``
is kept for its keys but not run; upstream runs this module in float32 under autocast
(``custom_fwd(cast_inputs=float32)``): the model calls it with autocast disabled.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rvos_nn.layers.box import inverse_sigmoid
from rvos_nn.layers.deformable_transformer import (
    DeformableTransformerDecoderLayer,
    DeformableTransformerEncoder,
    DeformableTransformerEncoderLayer,
    valid_ratios,
)
from rvos_nn.layers.mlp import MLP
from rvos_nn.text import FeatureResizer
from rvos_uninext.vl_fusion import VLFuse

PROPOSAL_BASE_SIZE = 0.05
"""Side of a level-0 encoder proposal, in units of the valid region; doubles per level."""
PROPOSAL_RANGE = (0.01, 0.99)
"""Open interval every proposal coordinate must lie in to be kept."""


def box_sine_embedding(
    boxes: Tensor, num_pos_feats: int = 128, temperature: float = 10000
) -> Tensor:
    """DINO ``get_sine_pos_embed`` with ``exchange_xy``: [N, Q, 4] (cx, cy, w, h) -> [N, Q, 4 * F].

    Each coordinate becomes F interleaved sin / cos features of ``coord * 2pi / dim_t``; the order
    of the four blocks is (cy, cx, w, h).
    """
    scale = 2 * math.pi
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    parts = []
    for coord in boxes.split(1, dim=-1):
        angles = coord * scale / dim_t
        parts.append(
            torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=3).flatten(2)
        )
    parts[0], parts[1] = parts[1], parts[0]
    return torch.cat(parts, dim=2)


def average_text(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the valid tokens: hidden [B, L, C], mask [B, L] (1 valid) -> [B, C]."""
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / mask.sum(-1).unsqueeze(-1).float()


class Levels(NamedTuple):
    """Flattened multi-scale input: src / pos [N, S, C], mask [N, S], shapes (h_l, w_l),
    ratios [N, L, 2] (valid w, h fraction per level)."""

    src: Tensor
    pos: Tensor
    mask: Tensor
    shapes: list[tuple[int, int]]
    ratios: Tensor


class DenoisingQueries(NamedTuple):
    """DINO's denoising queries of a batch: content [N, P, C], boxes [N, P, 4] (inverse-sigmoid
    cxcywh), self_attn_mask bool [P + Q, P + Q] (True = blocked) over the P denoising slots and
    the Q proposals."""

    content: Tensor
    boxes: Tensor
    self_attn_mask: Tensor


class TransformerOutput(NamedTuple):
    """hs [L_dec, N, Q, C]; memory [N, S, C]; init_reference [N, Q, 4]; inter_references
    [L_dec, N, Q, 4] (look-forward-twice: the refined boxes of each layer); enc_outputs_class
    [N, S, 1]; enc_outputs_coord_unact [N, S, 4]; text [N, L, C_text] after fusion; levels."""

    hs: Tensor
    memory: Tensor
    init_reference: Tensor
    inter_references: Tensor
    enc_outputs_class: Tensor
    enc_outputs_coord_unact: Tensor
    text: Tensor
    levels: Levels


class VLEncoder(nn.Module):
    """Deformable encoder whose first ``num_vl_layers`` layers are preceded by a VL fusion layer."""

    def __init__(
        self,
        *,
        layer: DeformableTransformerEncoderLayer,
        num_layers: int,
        fusion: VLFuse,
        num_vl_layers: int,
    ):
        super().__init__()
        self.vl_layers = nn.ModuleList(
            _clone(fusion) if i < num_vl_layers else nn.Identity() for i in range(num_layers)
        )
        self.layers = nn.ModuleList(_clone(layer) for _ in range(num_layers))

    def forward(self, levels: Levels, text: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (memory [N, S, C], fused text [N, L, C_text])."""
        reference = DeformableTransformerEncoder.reference_points(levels.shapes, levels.ratios)
        visual = levels.src
        for fuse, layer in zip(self.vl_layers, self.layers, strict=True):
            if isinstance(fuse, VLFuse):
                visual, text = fuse(visual, text, text_mask)
            visual = layer(visual, levels.pos, reference, levels.shapes, levels.mask)
        return visual, text


class BoxQueryDecoder(nn.Module):
    """Decoder over box references: sine(box) -> ``ref_point_head`` -> query positions.

    ``bbox_embed`` / ``class_embed`` are the detector's head lists (assigned by the detector,
    stored twice in checkpoints as upstream does); ``run_layers`` without ``bbox_embed`` keeps the
    boxes fixed (upstream's reid head).
    """

    def __init__(self, *, layer: DeformableTransformerDecoderLayer, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(_clone(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.ref_point_head = MLP(
            input_dim=2 * d_model, hidden_dim=d_model, output_dim=d_model, num_layers=2
        )
        self.bbox_embed: nn.ModuleList | None = None
        self.class_embed: nn.ModuleList | None = None

    def query_positions(self, boxes: Tensor) -> Tensor:
        """[N, Q, 4] boxes (already scaled by the level-0 valid ratios) -> [N, Q, C]."""
        return self.ref_point_head(box_sine_embedding(boxes))

    def run_layers(
        self,
        tgt: Tensor,
        boxes: Tensor,
        memory: Tensor,
        levels: Levels,
        padding_mask: Tensor | None,
        bbox_embed: nn.ModuleList | None,
        self_attn_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Returns (states [L, N, Q, C], refined boxes [L, N, Q, 4]; the input boxes when
        ``bbox_embed`` is None). The next layer reads the refined boxes detached."""
        scale = torch.cat([levels.ratios, levels.ratios], -1)[:, None]  # [N, 1, L, 4]
        states, references = [], []
        for index, layer in enumerate(self.layers):
            scaled = boxes[:, :, None] * scale
            query_pos = self.query_positions(scaled[:, :, 0, :])
            tgt = layer(tgt, query_pos, scaled, memory, levels.shapes, padding_mask, self_attn_mask)
            refined = boxes
            if bbox_embed is not None:
                refined = (bbox_embed[index](tgt) + inverse_sigmoid(boxes)).sigmoid()
                boxes = refined.detach()
            states.append(tgt)
            references.append(refined)
        return torch.stack(states), torch.stack(references)


class ReidHead(BoxQueryDecoder):
    """Upstream ``DeformableReidHead``: decoder layers without refinement -> last state.

    Upstream passes the padding mask positionally into the unused ``query_pos`` slot, so its
    deformable attention reads padded positions too: reproduced (no mask).
    """

    def forward(self, tgt: Tensor, boxes: Tensor, memory: Tensor, levels: Levels) -> Tensor:
        """tgt [N, Q, C], boxes [N, Q, 4] -> [N, Q, C]."""
        return self.run_layers(tgt, boxes, memory, levels, None, None)[0][-1]


class DinoVLTransformer(nn.Module):
    """Keys: ``level_embed``, ``encoder.{vl_layers,layers}``, ``decoder.{layers,ref_point_head}``
    (+ the detector's ``decoder.{bbox,class}_embed``), ``tgt_embed``, ``enc_output``,
    ``enc_output_norm``, ``resizer``."""

    def __init__(
        self,
        *,
        d_model: int,
        nhead: int,
        num_encoder_layers: int,
        num_decoder_layers: int,
        dim_feedforward: int,
        num_feature_levels: int,
        enc_n_points: int,
        dec_n_points: int,
        num_proposals: int,
        lang_dim: int,
        vl_hidden_dim: int,
        num_vl_layers: int,
    ):
        super().__init__()
        self.d_model = d_model
        self.num_proposals = num_proposals
        common = {
            "d_model": d_model,
            "d_ffn": dim_feedforward,
            "dropout": 0.0,
            "activation": "relu",
        }
        self.encoder = VLEncoder(
            layer=DeformableTransformerEncoderLayer(
                **common, n_levels=num_feature_levels, n_heads=nhead, n_points=enc_n_points
            ),
            num_layers=num_encoder_layers,
            fusion=VLFuse(v_dim=d_model, l_dim=lang_dim, embed_dim=vl_hidden_dim),
            num_vl_layers=num_vl_layers,
        )
        self.decoder = BoxQueryDecoder(
            layer=decoder_layer(
                d_model=d_model,
                d_ffn=dim_feedforward,
                nhead=nhead,
                levels=num_feature_levels,
                points=dec_n_points,
            ),
            num_layers=num_decoder_layers,
            d_model=d_model,
        )
        self.level_embed = nn.Parameter(torch.zeros(num_feature_levels, d_model))
        self.tgt_embed = nn.Embedding(num_proposals, d_model)
        self.enc_output = nn.Linear(d_model, d_model)
        self.enc_output_norm = nn.LayerNorm(d_model)
        self.resizer = FeatureResizer(in_features=lang_dim, out_features=d_model)

    def flatten(
        self, srcs: Sequence[Tensor], masks: Sequence[Tensor], poses: Sequence[Tensor]
    ) -> Levels:
        """Per-level [N, C, h, w] maps, masks [N, h, w] and position maps -> Levels."""
        shapes = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        mask = torch.cat([m.flatten(1) for m in masks], 1)
        pos = torch.cat(
            [
                p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1)
                for i, p in enumerate(poses)
            ],
            1,
        )
        ratios = torch.stack([valid_ratios(m) for m in masks], 1)
        return Levels(src, pos, mask, shapes, ratios)

    def forward(
        self,
        srcs: Sequence[Tensor],
        masks: Sequence[Tensor],
        poses: Sequence[Tensor],
        text: Tensor,
        text_mask: Tensor,
        denoising: DenoisingQueries | None = None,
    ) -> TransformerOutput:
        """srcs / poses: per level [N, C, h, w]; masks: [N, h, w] bool (True = padding);
        text: [N, L, C_text]; text_mask: [N, L] (1 valid); ``denoising``: queries put before
        the proposals (training), whose slots then lead every per-query output."""
        levels = self.flatten(srcs, masks, poses)
        memory, text = self.encoder(levels, text, text_mask)
        pooled = average_text(text, text_mask)
        proposals_memory, proposals = self.encoder_proposals(memory, levels)
        heads = self.decoder.num_layers
        enc_class = self.decoder.class_embed[heads](proposals_memory, pooled.unsqueeze(1))
        enc_coord = self.decoder.bbox_embed[heads](proposals_memory) + proposals
        top = torch.topk(enc_class[..., 0], self.num_proposals, dim=1)[1]
        boxes = torch.gather(enc_coord, 1, top.unsqueeze(-1).repeat(1, 1, 4)).sigmoid()
        tgt = self.tgt_embed.weight[None].repeat(memory.shape[0], 1, 1)
        attn_mask = None
        if denoising is not None:
            boxes = torch.cat([denoising.boxes.sigmoid(), boxes], 1)
            tgt = torch.cat([denoising.content, tgt], 1)
            attn_mask = denoising.self_attn_mask
        hs, references = self.decoder.run_layers(
            tgt, boxes, memory, levels, levels.mask, self.decoder.bbox_embed, attn_mask
        )
        return TransformerOutput(hs, memory, boxes, references, enc_class, enc_coord, text, levels)

    def encoder_proposals(self, memory: Tensor, levels: Levels) -> tuple[Tensor, Tensor]:
        """Two-stage proposals: one box per memory position (see ``proposal_boxes``).

        memory [N, S, C] -> (projected memory [N, S, C], box logits [N, S, 4]). Positions on
        padding, or whose box leaves ``PROPOSAL_RANGE``, get +inf logits and zero memory before
        ``enc_output`` + ``enc_output_norm``.
        """
        boxes = proposal_boxes(levels.mask, levels.shapes)
        rejected = levels.mask.unsqueeze(-1) | ~within_range(boxes)
        logits = torch.log(boxes / (1 - boxes)).masked_fill(rejected, float("inf"))
        projected = self.enc_output(memory.masked_fill(rejected, 0.0))
        return self.enc_output_norm(projected), logits


def cell_centres(height: int, width: int, device: torch.device) -> Tensor:
    """Centres of the cells of a height x width grid, in cells, row-major: [h * w, 2] (x, y)."""
    rows = torch.arange(height, dtype=torch.float32, device=device)
    cols = torch.arange(width, dtype=torch.float32, device=device)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((x, y), -1).view(-1, 2) + 0.5


def valid_extent(padding: Tensor) -> Tensor:
    """padding [N, h, w] (True = padding) -> [N, 1, 2]: valid (width, height) in cells.

    Counted along the first row and the first column (padding lies right and below).
    """
    valid = ~padding
    return torch.stack((valid[:, 0, :].sum(1), valid[:, :, 0].sum(1)), -1).unsqueeze(1)


def level_proposals(padding: Tensor, level: int) -> Tensor:
    """padding [N, h, w] -> boxes [N, h * w, 4] (cx, cy, w, h), one per cell.

    Centres are the cell centres over the valid extent; both sides are
    ``PROPOSAL_BASE_SIZE * 2**level``.
    """
    _, height, width = padding.shape
    centres = cell_centres(height, width, padding.device) / valid_extent(padding)
    sizes = torch.full_like(centres, PROPOSAL_BASE_SIZE * 2.0**level)
    return torch.cat((centres, sizes), -1)


def proposal_boxes(padding: Tensor, shapes: Sequence[tuple[int, int]]) -> Tensor:
    """padding [N, S] flattened over the levels ``shapes`` (h_l, w_l) -> boxes [N, S, 4]."""
    maps = padding.split([h * w for h, w in shapes], dim=1)
    return torch.cat(
        [
            level_proposals(level_map.view(-1, h, w), level)
            for level, (level_map, (h, w)) in enumerate(zip(maps, shapes, strict=True))
        ],
        1,
    )


def within_range(boxes: Tensor) -> Tensor:
    """boxes [N, S, 4] -> [N, S, 1]: every coordinate strictly inside ``PROPOSAL_RANGE``."""
    low, high = PROPOSAL_RANGE
    return ((boxes > low) & (boxes < high)).all(-1, keepdim=True)


def decoder_layer(
    *, d_model: int, d_ffn: int, nhead: int, levels: int, points: int
) -> DeformableTransformerDecoderLayer:
    """The DINO decoder layer (upstream's key names; self-attention, deformable cross-attention, FFN)."""
    return DeformableTransformerDecoderLayer(
        d_model=d_model,
        d_ffn=d_ffn,
        dropout=0.0,
        activation="relu",
        n_levels=levels,
        n_heads=nhead,
        n_points=points,
    )


def _clone(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)
