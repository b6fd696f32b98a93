"""UNINEXT's early vision-language fusion: one bidirectional attention block (from GLIP).

Papers: Li et al., "Grounded Language-Image Pre-training" (GLIP, CVPR 2022); Yan et al., UNINEXT
(CVPR 2023). Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d,
``UNINEXT/projects/UNINEXT/uninext/models/deformable_detr/{vlfusion.py,fuse_helper.py}``
(``VLFuse``, ``BiAttentionBlockForCheckpoint``, ``BiMultiHeadAttention``).

Kept on purpose: both inputs are layer-normalised first and the residual is added to the
*normalised* features; logits are clamped to [-50000, 50000]; the text attention mask adds 1 to
valid tokens and -9e15 to padding (a constant shift of the valid logits, kept for bitwise parity);
the visual side's padding is not masked. Differences: dropout and drop-path omitted (0 / identity at
inference).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_CLAMP = 50000.0


class BiMultiHeadAttention(nn.Module):
    """Cross attention in both directions between visual tokens [B, S, Cv] and text [B, L, Cl]."""

    def __init__(self, *, v_dim: int, l_dim: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.scale = self.head_dim**-0.5
        self.v_proj = nn.Linear(v_dim, embed_dim)
        self.l_proj = nn.Linear(l_dim, embed_dim)
        self.values_v_proj = nn.Linear(v_dim, embed_dim)
        self.values_l_proj = nn.Linear(l_dim, embed_dim)
        self.out_v_proj = nn.Linear(embed_dim, v_dim)
        self.out_l_proj = nn.Linear(embed_dim, l_dim)

    def _heads(self, x: Tensor) -> Tensor:
        """[B, T, E] -> [B * heads, T, E / heads]."""
        b, t, _ = x.shape
        return (
            x.view(b, t, self.num_heads, self.head_dim)
            .transpose(1, 2)
            .reshape(b * self.num_heads, t, -1)
        )

    def _merge(self, x: Tensor, batch: int) -> Tensor:
        """[B * heads, T, E / heads] -> [B, T, E]."""
        t = x.shape[1]
        return x.view(batch, self.num_heads, t, self.head_dim).transpose(1, 2).reshape(batch, t, -1)

    def forward(self, v: Tensor, lang: Tensor, lang_mask: Tensor) -> tuple[Tensor, Tensor]:
        """v: [B, S, Cv]; lang: [B, L, Cl]; lang_mask: [B, L] (1 valid, 0 padding).

        Returns (delta_v [B, S, Cv], delta_l [B, L, Cl]).
        """
        batch, num_visual, _ = v.shape
        query = self._heads(self.v_proj(v) * self.scale)
        key = self._heads(self.l_proj(lang))
        value_v = self._heads(self.values_v_proj(v))
        value_l = self._heads(self.values_l_proj(lang))
        logits = torch.bmm(query, key.transpose(1, 2)).clamp(min=-_CLAMP, max=_CLAMP)  # [BH, S, L]

        logits_l = logits.transpose(1, 2)
        logits_l = logits_l - logits_l.max(dim=-1, keepdim=True)[0]
        attn_l = logits_l.clamp(min=-_CLAMP, max=_CLAMP).softmax(dim=-1)  # [BH, L, S]

        additive = lang_mask.to(logits.dtype).masked_fill(lang_mask == 0, -9e15)  # [B, L]
        logits_v = logits.view(batch, self.num_heads, num_visual, -1) + additive[:, None, None, :]
        attn_v = logits_v.view(batch * self.num_heads, num_visual, -1).softmax(dim=-1)  # [BH, S, L]

        delta_v = self.out_v_proj(self._merge(torch.bmm(attn_v, value_l), batch))
        delta_l = self.out_l_proj(self._merge(torch.bmm(attn_l, value_v), batch))
        return delta_v, delta_l


class BiAttentionBlock(nn.Module):
    """Pre-norm bidirectional attention with layer scales ``gamma_v`` / ``gamma_l``."""

    def __init__(self, *, v_dim: int, l_dim: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.layer_norm_v = nn.LayerNorm(v_dim)
        self.layer_norm_l = nn.LayerNorm(l_dim)
        self.attn = BiMultiHeadAttention(
            v_dim=v_dim, l_dim=l_dim, embed_dim=embed_dim, num_heads=num_heads
        )
        self.gamma_v = nn.Parameter(torch.ones(v_dim))
        self.gamma_l = nn.Parameter(torch.ones(l_dim))

    def forward(self, v: Tensor, lang: Tensor, lang_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the fused (v [B, S, Cv], lang [B, L, Cl])."""
        v = self.layer_norm_v(v)
        lang = self.layer_norm_l(lang)
        delta_v, delta_l = self.attn(v, lang, lang_mask)
        return v + self.gamma_v * delta_v, lang + self.gamma_l * delta_l


class VLFuse(nn.Module):
    """The early-fusion layer of the encoder (upstream ``VLFuse``: 8 heads, attribute ``b_attn``)."""

    NUM_HEADS = 8

    def __init__(self, *, v_dim: int, l_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.b_attn = BiAttentionBlock(
            v_dim=v_dim, l_dim=l_dim, embed_dim=embed_dim, num_heads=self.NUM_HEADS
        )

    def forward(self, visual: Tensor, lang: Tensor, lang_mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.b_attn(visual, lang, lang_mask)
