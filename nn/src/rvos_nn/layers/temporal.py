"""VITA-like temporal query module: per-frame object queries of a whole clip -> video queries.

Used by SOC (attribute ``vita``; ``voc`` in the public release) and MUTR (attribute ``mti``).
Papers: Heo et al., "VITA: Video Instance Segmentation via Object Token Association", NeurIPS
2022; Luo et al., "SOC: Semantic-Assisted Object Cluster for Referring Video Object
Segmentation", NeurIPS 2023; Yan et al., "Referred by Multi-Modality: A Unified Temporal
Transformer for Video Object Segmentation" (MUTR), AAAI 2024. Upstream: ``soc_test/models/vita.py``
and ``MUTR/models/mti.py`` in RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (the two files share
their layer code; they differ in the decoder's content queries and in the constructor values).

Key layout (upstream names): ``transformer_self_attention_layers.i.{self_attn, norm}``,
``transformer_cross_attention_layers.i.{multihead_attn, norm}``,
``transformer_ffn_layers.i.{linear1, linear2, norm}``, ``fq_pos``, ``query_embed``, optional
``query_feat``, ``decoder_norm``, ``enc_self_attn.i.{self_attn, norm}``,
``enc_ffn.i.{linear1, linear2, norm}``.

Computation (inference semantics of both copies):

* Encoder over the T x fQ frame queries, post-norm, no positions. ``window_size == 0``: plain
  self-attention over all T * fQ queries (SOC). ``window_size == W > 0`` (MUTR, W = 4): time is
  zero-padded to a multiple of W; even layers attend inside windows of W frames (padded frames
  are key padding); odd layers roll time by ceil(W / 2), attend inside the shifted windows with
  an additive -1000 mask (see :func:`shifted_window_mask`) and roll back. In training mode every
  layer uses the unshifted windows (upstream's ``self.training or layer_idx % 2 == 0``).
* Decoder: content = ``query_feat`` (MUTR) or a per-clip vector repeated over the queries (SOC:
  the sentence feature); position = ``query_embed``; memory = the first T encoded frames with
  ``fq_pos`` added to the keys; per layer cross-attention -> self-attention -> FFN;
  ``decoder_norm`` after the last layer.

Training: upstream feeds the states of every deformable-decoder layer through the module at once
(as L x B independent sequences) and returns the last decoder layer's output for each; here the
caller folds those layers into the batch axis ([T, L, fQ, C] for one clip). Dropout and the
unshifted windows follow the module's mode.

Differences from upstream: upstream reshapes its [L, T, B, ...] input as [L * B, T, ...], which is
only correct for batch 1 (the batch size every competition model trained with, MUTR's
``--batch_size 2`` aside); here the batch axis is handled properly (identical for batch 1).
Attention weights are not materialised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHIFT_MASK_VALUE = -1000.0
"""Additive attention penalty of the shifted windows (upstream's value, not -inf)."""


class SelfAttentionLayer(nn.Module):
    """Post-norm self-attention: ``norm(x + attn(x + pos, x + pos, x))``."""

    def __init__(self, *, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        pos: Tensor | None = None,
        attn_mask: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """x: [S, B, C]; attn_mask: float [B * heads, S, S]; key_padding_mask: bool [B, S]."""
        qk = x if pos is None else x + pos
        out = self.self_attn(
            qk,
            qk,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
        )[0]
        return self.norm(x + self.dropout(out))


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention: ``norm(x + attn(x + query_pos, memory + pos, memory))``."""

    def __init__(self, *, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, *, pos: Tensor, query_pos: Tensor) -> Tensor:
        """x: [Q, B, C]; memory, pos: [S, B, C]; query_pos: [Q, B, C]."""
        out = self.multihead_attn(x + query_pos, memory + pos, memory, need_weights=False)[0]
        return self.norm(x + self.dropout(out))


class FFNLayer(nn.Module):
    """Post-norm ReLU feed-forward: ``norm(x + linear2(relu(linear1(x))))``."""

    def __init__(self, *, d_model: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm(x + self.dropout(out))


def shifted_window_mask(pad_mask: Tensor, *, window: int, nheads: int, queries: int) -> Tensor:
    """Additive mask of the shifted-window layers, as upstream builds it.

    pad_mask: bool [B, Tp] (True = padded frame, Tp a multiple of ``window``). In time rolled by
    h = ceil(window / 2): rows of padded frames are masked in every window; in the first and the
    last window also their columns; in the first window additionally every pair between its
    first h and its last window - h frames (they come from opposite ends of the clip).
    Returns float [B * Nw * nheads, window * queries, window * queries] of 0 / -1000 (batch-major,
    then window, then head, as ``nn.MultiheadAttention`` expects for a [W * fQ, B * Nw, C] input).
    """
    b, tp = pad_mask.shape
    nw, half = tp // window, math.ceil(window / 2)
    rolled = torch.roll(pad_mask, half, 1).view(b, nw, window, 1).expand(b, nw, window, window)
    mask = rolled.clone()
    mask[:, 0] = mask[:, 0] | mask[:, 0].transpose(-2, -1)
    mask[:, -1] = mask[:, -1] | mask[:, -1].transpose(-2, -1)
    mask[:, 0, :half, half:] = True
    mask[:, 0, half:, :half] = True
    mask = mask.view(b * nw, 1, window, 1, window, 1)
    mask = mask.expand(b * nw, nheads, window, queries, window, queries)
    mask = mask.reshape(b * nw * nheads, window * queries, window * queries)
    return mask.float() * SHIFT_MASK_VALUE


class TemporalQueryModule(nn.Module):
    """Frame queries of one decoder layer [T, B, fQ, C] -> video queries [B, Q, C].

    ``window_size`` 0 = full attention over time (SOC); W > 0 = windows of W frames, shifted on
    odd encoder layers in eval mode only (MUTR). ``learned_query_feat`` adds the ``query_feat``
    embedding as the decoder's content queries (MUTR); without it the caller passes a per-clip
    content vector (SOC: the sentence feature). ``dropout`` acts in training mode only.
    """

    def __init__(
        self,
        *,
        d_model: int,
        num_frame_queries: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        enc_layers: int,
        dec_layers: int,
        window_size: int = 0,
        dropout: float = 0.0,
        learned_query_feat: bool = False,
    ):
        super().__init__()
        if window_size < 0:
            raise ValueError(f"window_size must be >= 0, got {window_size}")
        self.window_size = window_size
        self.num_frame_queries = num_frame_queries
        self.num_queries = num_queries
        self.nheads = nheads

        attention = {"d_model": d_model, "nhead": nheads, "dropout": dropout}

        def ffn() -> FFNLayer:
            return FFNLayer(d_model=d_model, dim_feedforward=dim_feedforward, dropout=dropout)

        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(**attention) for _ in range(dec_layers)
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(**attention) for _ in range(dec_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(ffn() for _ in range(dec_layers))
        self.fq_pos = nn.Embedding(num_frame_queries, d_model)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.query_feat = nn.Embedding(num_queries, d_model) if learned_query_feat else None
        self.decoder_norm = nn.LayerNorm(d_model)
        self.enc_self_attn = nn.ModuleList(
            SelfAttentionLayer(**attention) for _ in range(enc_layers)
        )
        self.enc_ffn = nn.ModuleList(ffn() for _ in range(enc_layers))

    def forward(self, frame_queries: Tensor, content: Tensor | None = None) -> Tensor:
        """frame_queries: [T, B, fQ, C] (one decoder layer's states per frame); content: [B, C]
        repeated over the Q video queries, required exactly when there is no ``query_feat``.
        Returns the video queries [B, Q, C]."""
        t, b, fq, c = frame_queries.shape
        if fq != self.num_frame_queries:
            raise ValueError(f"expected {self.num_frame_queries} frame queries, got {fq}")
        if (content is None) == (self.query_feat is None):
            raise ValueError("pass content exactly when the module has no learned query_feat")
        x = self.encode(frame_queries.permute(0, 2, 1, 3))  # [T, fQ, B, C]
        memory = x.flatten(0, 1)
        pos = self.fq_pos.weight[None, :, None, :].expand(t, fq, b, c).flatten(0, 1)
        query_pos = self.query_embed.weight[:, None, :].expand(self.num_queries, b, c)
        if self.query_feat is not None:
            out = self.query_feat.weight[:, None, :].expand(self.num_queries, b, c)
        else:
            out = content[None].expand(self.num_queries, b, c)
        for cross, self_attn, ffn in zip(
            self.transformer_cross_attention_layers,
            self.transformer_self_attention_layers,
            self.transformer_ffn_layers,
            strict=True,
        ):
            out = cross(out, memory, pos=pos, query_pos=query_pos)
            out = self_attn(out, pos=query_pos)
            out = ffn(out)
        return self.decoder_norm(out).transpose(0, 1)

    def encode(self, x: Tensor) -> Tensor:
        """Encoder over the frame queries: [T, fQ, B, C] -> [T, fQ, B, C]."""
        if self.window_size == 0:
            t, fq, b, c = x.shape
            y = x.reshape(t * fq, b, c)
            for attn, ffn in zip(self.enc_self_attn, self.enc_ffn, strict=True):
                y = ffn(attn(y))
            return y.view(t, fq, b, c)
        return self._encode_windows(x)

    def _encode_windows(self, x: Tensor) -> Tensor:
        t, fq, b, _ = x.shape
        w = self.window_size
        tp = math.ceil(t / w) * w
        x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, tp - t))
        pad_mask = torch.ones(b, tp, dtype=torch.bool, device=x.device)
        pad_mask[:, :t] = False
        key_padding = pad_mask.view(b * (tp // w), w, 1).expand(-1, w, fq).reshape(-1, w * fq)
        shift_mask = shifted_window_mask(pad_mask, window=w, nheads=self.nheads, queries=fq)
        half = math.ceil(w / 2)
        for i, (attn, ffn) in enumerate(zip(self.enc_self_attn, self.enc_ffn, strict=True)):
            if i % 2 == 0 or self.training:
                x = self._window_layer(x, attn, ffn, key_padding_mask=key_padding)
            else:
                rolled = torch.roll(x, half, 0)
                rolled = self._window_layer(rolled, attn, ffn, attn_mask=shift_mask.to(x.dtype))
                x = torch.roll(rolled, -half, 0)
        return x[:t]

    def _window_layer(
        self, x: Tensor, attn: SelfAttentionLayer, ffn: FFNLayer, **masks: Tensor
    ) -> Tensor:
        """One encoder layer inside each window of W frames:
        [Tp, fQ, B, C] -> [W * fQ, B * Nw, C] -> layer -> [Tp, fQ, B, C]."""
        tp, fq, b, c = x.shape
        w = self.window_size
        nw = tp // w
        y = x.view(nw, w, fq, b, c).permute(1, 2, 3, 0, 4).reshape(w * fq, b * nw, c)
        y = ffn(attn(y, **masks))
        return y.view(w, fq, b, nw, c).permute(3, 0, 1, 2, 4).reshape(tp, fq, b, c)
