"""AOT: long short-term transformer (LSTT) propagation, as the ICCV 2023 RVOS winner ran it.

Paper: Yang, Wei & Yang, "Associating Objects with Transformers for Video Object Segmentation",
NeurIPS 2021. Upstream: the competition copy RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d,
``soc_test/AOT`` (an older yoxu515/aot-benchmark snapshot): ``networks/models/aot.py``,
``networks/layers/transformer.py`` (``LongShortTermTransformer``, ``...Block``),
``networks/layers/attention.py`` (``MultiheadAttention``, ``MultiheadLocalAttentionV3``),
``networks/layers/basic.py`` (``GNActDWConv2d``); configuration ``configs/models/swinl_aotl.py``.

Same parameter names and shapes as the competition checkpoint (no ``LSTT.mask_token``: later
aot-benchmark versions add it, unused). Differences: inference only but for the drop-path of the self-attention and feed-forward residuals
(rate 0 unless ``rvos_vos.training`` sets it); the feed-forward width is a
config field (upstream fixes it at 1024); attention through the shared layers (``rvos_vos.layers``).
Memory entry per layer: (K, V) with V already fused with the identity embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_vos.layers import (
    MAX_DIS,
    DropPath,
    local_attention,
    multihead_attention,
    normalize_outputs,
    seq_to_2d,
)
from rvos_vos.network import Entries, NetConfig, PropagationNet
from rvos_vos.swin2d import SWIN_VARIANTS


@dataclass(frozen=True)
class AOTConfig(NetConfig):
    """AOT hyperparameters (see NetConfig); ``dim_feedforward`` is the LSTT FFN width."""

    vos: ClassVar[str] = "aot"

    dim_feedforward: int = 1024


VARIANTS: dict[str, AOTConfig] = {
    # Competition model swinl_aotl (configs/models/swinl_aotl.py + swin_large).
    "full": AOTConfig(),
    # CPU tests: the layout of the parity fixture, every code path, small widths.
    "tiny": AOTConfig(
        swin=SWIN_VARIANTS["tiny"],
        encoder_dims=(16, 32, 64, 64),
        d_model=64,
        num_layers=2,
        long_term_gap=2,
    ),
}


class MultiheadAttention(nn.Module):
    """Upstream ``MultiheadAttention``: optional Q/K/V projections, attention, output projection."""

    def __init__(self, *, d_model: int, heads: int, use_linear: bool) -> None:
        super().__init__()
        self.heads = heads
        self.use_linear = use_linear
        if use_linear:
            self.linear_Q = nn.Linear(d_model, d_model)
            self.linear_K = nn.Linear(d_model, d_model)
            self.linear_V = nn.Linear(d_model, d_model)
        self.projection = nn.Linear(d_model, d_model)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q: [Lq, N, C]; k, v: [Lk, N, C] -> [Lq, N, C]."""
        if self.use_linear:
            q, k, v = self.linear_Q(q), self.linear_K(k), self.linear_V(v)
        return self.projection(multihead_attention(q, k, v, self.heads))


class LocalAttention(nn.Module):
    """Upstream ``MultiheadLocalAttention`` (use_linear=False): 15x15 window attention with a
    query-dependent relative bias on the logits and a learned relative bias on the values."""

    def __init__(self, *, d_model: int, heads: int) -> None:
        super().__init__()
        win = (2 * MAX_DIS + 1) ** 2
        self.heads = heads
        self.relative_emb_k = nn.Conv2d(d_model, heads * win, kernel_size=1, groups=heads)
        self.relative_emb_v = nn.Parameter(torch.zeros(heads, d_model // heads, win))
        self.projection = nn.Linear(d_model, d_model)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v: [N, C, h, w] -> [h·w, N, C]."""
        n, c, h, w = q.shape
        heads, dk = self.heads, c // self.heads
        bias = self.relative_emb_k(q).reshape(n, heads, -1, h, w)
        q = (q / dk**0.5).reshape(n, heads, dk, h, w)
        out, attn = local_attention(
            q, k.reshape(n, heads, dk, h, w), v.reshape(n, heads, dk, h, w), bias
        )
        out = out + torch.einsum("nakyx,ack->nacyx", attn, self.relative_emb_v)
        return self.projection(out.reshape(n, c, h * w).permute(2, 0, 1))


class GNActDWConv2d(nn.Module):
    """GroupNorm(32) -> GELU -> 5x5 depth-wise convolution (no bias), on a token sequence."""

    def __init__(self, *, dim: int, groups: int = 32) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(groups, dim)
        self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, bias=False)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """[h·w, N, C] -> [h·w, N, C]."""
        y = self.conv(F.gelu(self.gn(seq_to_2d(x, size))))
        return y.flatten(2).permute(2, 0, 1)


class LSTTBlock(nn.Module):
    """Self-attention, then long-term (global) + short-term (local) attention to the memory,
    then a feed-forward network; pre-LayerNorm residual branches."""

    def __init__(self, *, config: AOTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = MultiheadAttention(d_model=d, heads=config.self_heads, use_linear=True)
        self.norm2 = nn.LayerNorm(d)
        self.linear_Q = nn.Linear(d, d)
        self.linear_V = nn.Linear(d, d)
        self.long_term_attn = MultiheadAttention(
            d_model=d, heads=config.att_heads, use_linear=False
        )
        self.short_term_attn = LocalAttention(d_model=d, heads=config.att_heads)
        self.norm3 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, config.dim_feedforward)
        self.activation = GNActDWConv2d(dim=config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, d)
        self.droppath = DropPath(batch_dim=1)

    def fuse(self, entry: tuple[Tensor, ...], id_emb: Tensor) -> tuple[Tensor, Tensor]:
        """Raw (K, V) of a frame -> its memory (K, linear_V(V + identity embedding))."""
        key, value = entry
        return key, self.linear_V(value + id_emb)

    def forward(
        self,
        tgt: Tensor,
        long_memory: tuple[Tensor, ...] | None,
        short_memory: tuple[Tensor, ...] | None,
        id_emb: Tensor | None,
        pos: Tensor,
        size: tuple[int, int],
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """tgt: [h·w, N, C]. Returns (output, entry): fused with ``id_emb`` if given, else raw."""
        x = self.norm1(tgt)
        tgt = tgt + self.droppath(self.self_attn(x + pos, x + pos, x))
        x = self.norm2(tgt)
        query = self.linear_Q(x)
        entry = (query, x) if id_emb is None else self.fuse((query, x), id_emb)
        long_k, long_v = long_memory if id_emb is None else entry
        short_k, short_v = short_memory if id_emb is None else entry
        tgt = tgt + self.long_term_attn(query, long_k, long_v)
        tgt = tgt + self.short_term_attn(
            seq_to_2d(query, size), seq_to_2d(short_k, size), seq_to_2d(short_v, size)
        )
        x = self.norm3(tgt)
        tgt = tgt + self.droppath(self.linear2(self.activation(self.linear1(x), size)))
        return tgt, entry


class LongShortTermTransformer(nn.Module):
    """The stack of LSTT blocks and its output norms (intermediate ones when the decoder uses them)."""

    def __init__(self, *, config: AOTConfig) -> None:
        super().__init__()
        self.intermediate = config.decoder_intermediate
        self.layers = nn.ModuleList(LSTTBlock(config=config) for _ in range(config.num_layers))
        norms = config.num_layers if config.decoder_intermediate else 1
        self.decoder_norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(norms))

    def forward(
        self,
        x: Tensor,
        long_memory: Entries | None,
        short_memory: Entries | None,
        id_emb: Tensor | None,
        pos: Tensor,
        size: tuple[int, int],
    ) -> tuple[list[Tensor], Entries]:
        outputs, entries = [], []
        for i, layer in enumerate(self.layers):
            long_i = long_memory[i] if long_memory is not None else None
            short_i = short_memory[i] if short_memory is not None else None
            x, entry = layer(x, long_i, short_i, id_emb, pos, size)
            outputs.append(x)
            entries.append(entry)
        return normalize_outputs(outputs, self.decoder_norms, self.intermediate), entries


class AOT(PropagationNet):
    """Swin encoder + LSTT + FPN decoder (stateless; see ``rvos_vos.session``)."""

    def __init__(self, *, config: AOTConfig) -> None:
        in_dim = config.d_model * (config.num_layers + 1 if config.decoder_intermediate else 1)
        super().__init__(
            config=config, lstt=LongShortTermTransformer(config=config), decoder_in_dim=in_dim
        )


def build(config: AOTConfig | str = "full") -> AOT:
    """An AOT network from a config or a variant name (``VARIANTS``)."""
    if isinstance(config, str):
        config = VARIANTS[config]
    return AOT(config=config).eval()
