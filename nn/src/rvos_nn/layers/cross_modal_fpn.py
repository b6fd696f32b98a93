"""Vision-language fusion and the cross-modal FPN pixel decoder of ReferFormer (also used by MUTR).

Paper: Wu et al., "Language as Queries for Referring Video Object Segmentation", CVPR 2022.
Upstream: ``ReferFormer/models/segmentation.py`` (``CrossModalFPNDecoder``, ``VisionLanguageBlock``,
``VisionLanguageFusionModule``) in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d; MUTR's copy is the
same except that its early fusion adds instead of multiplying (``combine="add"``).

Token layout inside the blocks is upstream's sequence-first ``[(T * h * w), B, C]``: a clip's
tokens of all frames attend to each other. Differences: post-norm only (``normalize_before`` is
never set by the models); attention weights are not materialised (``need_weights=False``) and the
feed-forward layers run over chunks of tokens (same values, bounded memory);
initialisation is PyTorch's default (upstream's fvcore/Xavier fill only matters for training).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.layers.chunking import rowwise
from rvos_nn.layers.position import PositionEmbeddingSine1D


def maps_to_tokens(x: Tensor, batch: int) -> Tensor:
    """[B * T, C, h, w] -> [(T * h * w), B, C]."""
    n, c, h, w = x.shape
    return x.view(batch, n // batch, c, h, w).permute(1, 3, 4, 0, 2).reshape(-1, batch, c)


def tokens_to_maps(x: Tensor, t: int, h: int, w: int) -> Tensor:
    """[(T * h * w), B, C] -> [B * T, C, h, w]."""
    _, b, c = x.shape
    return x.view(t, h, w, b, c).permute(3, 0, 4, 1, 2).reshape(b * t, c, h, w)


class VisionLanguageFusion(nn.Module):
    """Early fusion: visual tokens attend to the words; the result multiplies (or is added to)
    the visual tokens. Parameters: ``multihead_attn``."""

    def __init__(
        self, *, d_model: int, nhead: int, combine: Literal["multiply", "add"], dropout: float = 0.0
    ):
        super().__init__()
        if combine not in ("multiply", "add"):
            raise ValueError(f"combine must be 'multiply' or 'add', got {combine!r}")
        self.combine = combine
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_key_padding_mask: Tensor | None,
        pos: Tensor | None,
    ) -> Tensor:
        """tgt: [S, B, C] visual tokens (no position); memory: [L, B, C] words; pos: [L, B, C]
        text position added to the keys; memory_key_padding_mask: bool [B, L]. Returns [S, B, C]."""
        key = memory if pos is None else memory + pos
        attended = self.multihead_attn(
            tgt, key, memory, key_padding_mask=memory_key_padding_mask, need_weights=False
        )[0]
        return tgt * attended if self.combine == "multiply" else tgt + attended


class VisionLanguageBlock(nn.Module):
    """Spatially reduced self-attention over a clip, cross-attention to the text, FFN (post-norm).

    With ``sr_ratio > 1`` queries, keys and values are nearest-downsampled to
    (floor(h / r), floor(w / r)) per frame and the attention output is upsampled back bilinearly.
    """

    def __init__(
        self,
        *,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float = 0.1,
        sr_ratio: int = 1,
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.sr_ratio = sr_ratio

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        size: tuple[int, int, int],
        tgt_key_padding_mask: Tensor | None,
        memory_key_padding_mask: Tensor | None,
        pos: Tensor | None,
        query_pos: Tensor,
    ) -> Tensor:
        """tgt, query_pos: [(T * h * w), B, C]; size: (T, h, w); tgt_key_padding_mask: bool
        [B, T * h * w]; memory, pos: [L, B, C]; memory_key_padding_mask: bool [B, L]."""
        tgt = self.norm1(
            tgt + self.dropout1(self._self_attention(tgt, query_pos, size, tgt_key_padding_mask))
        )
        key = memory if pos is None else memory + pos
        attended = self.multihead_attn(
            tgt + query_pos,
            key,
            memory,
            key_padding_mask=memory_key_padding_mask,
            need_weights=False,
        )[0]
        return rowwise(self._ffn, self.norm2(tgt + self.dropout2(attended)))

    def _ffn(self, tgt: Tensor) -> Tensor:
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))

    def _self_attention(
        self, tgt: Tensor, query_pos: Tensor, size: tuple[int, int, int], mask: Tensor | None
    ) -> Tensor:
        qk = tgt + query_pos
        if self.sr_ratio == 1:
            return self.self_attn(qk, qk, tgt, key_padding_mask=mask, need_weights=False)[0]
        t, h, w = size
        b = tgt.shape[1]
        small = (int(h * 1.0 / self.sr_ratio), int(w * 1.0 / self.sr_ratio))

        def shrink(x: Tensor) -> Tensor:
            return maps_to_tokens(
                F.interpolate(tokens_to_maps(x, t, h, w), size=small, mode="nearest"), b
            )

        if mask is not None:
            mask = F.interpolate(
                mask.reshape(b * t, h, w)[None].float(), size=small, mode="nearest"
            )
            mask = mask.bool()[0].reshape(b, -1)
        q = shrink(qk)
        attended = self.self_attn(q, q, shrink(tgt), key_padding_mask=mask, need_weights=False)[0]
        attended = F.interpolate(
            tokens_to_maps(attended, t, *small), size=(h, w), mode="bilinear", align_corners=False
        )
        return maps_to_tokens(attended, b)


class Conv2dNorm(nn.Conv2d):
    """Conv2d followed by an optional ``norm`` submodule and ReLU (upstream's detectron2-style
    ``Conv2d``; keys ``weight``, ``bias`` if any, ``norm.*``)."""

    def __init__(self, *args, norm: nn.Module | None = None, relu: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


class CrossModalFPNDecoder(nn.Module):
    """Top-down FPN over (/4 backbone map, /8, /16, /32 encoder maps) with a vision-language block
    at every level, ending in ``mask_features`` (stride 4).

    Keys: ``adapter_{i}`` (1x1 conv, no bias, ``norm`` GroupNorm(8)), ``layer_{i}`` (3x3 conv, no
    bias, GroupNorm(8), ReLU), ``cross_attn_{i}`` (VisionLanguageBlock, sr ratio 8/4/2/1 for
    i = 1..4, i.e. /4 ... /32), ``mask_features`` (3x3 conv with bias).
    """

    def __init__(
        self,
        *,
        feature_channels: Sequence[int],
        conv_dim: int,
        mask_dim: int,
        dim_feedforward: int,
        nhead: int = 8,
    ):
        super().__init__()
        sr_ratios = [8, 4, 2, 1]
        for i, in_channels in enumerate(feature_channels, start=1):
            adapter = Conv2dNorm(
                in_channels, conv_dim, kernel_size=1, bias=False, norm=nn.GroupNorm(8, conv_dim)
            )
            layer = Conv2dNorm(
                conv_dim,
                conv_dim,
                kernel_size=3,
                padding=1,
                bias=False,
                norm=nn.GroupNorm(8, conv_dim),
                relu=True,
            )
            self.add_module(f"adapter_{i}", adapter)
            self.add_module(f"layer_{i}", layer)
        self.mask_features = Conv2dNorm(conv_dim, mask_dim, kernel_size=3, padding=1)
        self.text_pos = PositionEmbeddingSine1D(num_pos_feats=conv_dim, normalize=True)
        for i in range(1, len(feature_channels) + 1):
            block = VisionLanguageBlock(
                d_model=conv_dim,
                nhead=nhead,
                dim_feedforward=dim_feedforward,
                sr_ratio=sr_ratios[i - 1],
            )
            self.add_module(f"cross_attn_{i}", block)
        self.num_levels = len(feature_channels)

    def forward(
        self,
        maps: Sequence[Tensor],
        masks: Sequence[Tensor],
        poses: Sequence[Tensor],
        text: Tensor,
        text_mask: Tensor,
        num_frames: int,
    ) -> Tensor:
        """Fuse from coarse to fine.

        Args:
            maps: fine to coarse [B * T, C_i, h_i, w_i]: the /4 backbone map, then the /8, /16,
                /32 encoder memory maps.
            masks: bool [B * T, h_i, w_i] per level (True = padding).
            poses: [B * T, conv_dim, h_i, w_i] per level.
            text: [B, L, conv_dim] word features; text_mask: bool [B, L] (True = padding).

        Returns:
            mask features [B * T, mask_dim, h_0, w_0].
        """
        batch = text.shape[0]
        words = text.transpose(0, 1)
        text_pos = self.text_pos(text_mask).permute(2, 0, 1)
        y = None
        for i in reversed(range(self.num_levels)):
            x, mask, pos = maps[i], masks[i], poses[i]
            _, _, h, w = x.shape
            tokens = maps_to_tokens(getattr(self, f"adapter_{i + 1}")(x), batch)
            tokens = getattr(self, f"cross_attn_{i + 1}")(
                tokens,
                words,
                (num_frames, h, w),
                mask.reshape(batch, -1),
                text_mask,
                text_pos,
                maps_to_tokens(pos, batch),
            )
            fused = tokens_to_maps(tokens, num_frames, h, w)
            if y is not None:
                fused = fused + F.interpolate(y, size=(h, w), mode="nearest")
            y = getattr(self, f"layer_{i + 1}")(fused)
        return self.mask_features(y)
