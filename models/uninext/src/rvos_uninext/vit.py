"""ViTDet-style plain ViT with UNINEXT's simple feature pyramid (the ViT-H backbone of UNINEXT).

Paper: Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ViTDet, ECCV
2022); used by Yan et al., "Universal Instance Perception as Object Discovery and Retrieval"
(UNINEXT, CVPR 2023). Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d,
``UNINEXT/projects/UNINEXT/uninext/backbone/{vit.py,utils.py}`` (``D2ViT``), identical to
MasterBin-IIAU/UNINEXT. Re-implemented from the description in shared/parity/uninext/vit/README.md;
parameter names are upstream's, so a checkpoint loads without a key map.

Kept on purpose (checkpoint parity):
* window attention only in the blocks of ``WINDOW_BLOCK_INDEXES`` (a list written for a 12-block ViT
  and used unchanged for the 32 blocks of ViT-H): every other block is global;
* relative-position tables sized for ``img_size`` and resized with 1-D linear interpolation;
* the absolute position embedding stored on the 14x14 pre-training grid with a cls slot and resized
  with bicubic interpolation **without antialias**.
Stochastic depth in training (``drop_path_rate``: ViT-H 0.5, rising linearly over
the blocks, as ``D2ViT``). Differences: no activation checkpointing (upstream's USE_CHECKPOINT saves
memory only). Attention is computed
explicitly in upstream's operation order (bit-identical on the same build); a fused kernel gives
~5e-7 differences that the mask logits (in pixel units, up to hundreds) amplify.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_nn.layers.stochastic_depth import drop_path, linear_rates

WINDOW_BLOCK_INDEXES = (0, 1, 3, 4, 6, 7, 9, 10)
# Upstream ViT arguments that UNINEXT fixes and this module implements only in that setting.
_FIXED_UPSTREAM_ARGS = {
    "qkv_bias": True,
    "use_rel_pos": True,
    "use_abs_pos": True,
    "pretrain_use_cls_token": True,
    "residual_block_indexes": [],
}


@dataclass(frozen=True)
class ViTConfig:
    """Hyperparameters of ``ViT`` (upstream ``D2ViT`` passes everything but the first four)."""

    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    in_chans: int = 3
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    pretrain_img_size: int = 224
    layernorm_eps: float = 1e-6
    window_block_indexes: tuple[int, ...] = WINDOW_BLOCK_INDEXES
    drop_path_rate: float = 0.0

    @classmethod
    def huge(cls, *, in_chans: int = 3) -> ViTConfig:
        """ViT-H/16 as in UNINEXT's ``video_joint_vit_huge`` configs."""
        return cls(embed_dim=1280, depth=32, num_heads=16, in_chans=in_chans, drop_path_rate=0.5)

    @classmethod
    def tiny(cls, *, in_chans: int = 3) -> ViTConfig:
        """The parity fixture's ViT: 14 blocks, so blocks 11-13 show the global-beyond-the-list quirk."""
        return cls(embed_dim=64, depth=14, num_heads=4, in_chans=in_chans)

    @classmethod
    def from_upstream(cls, args: Mapping[str, Any]) -> ViTConfig:
        """From upstream's ``ViT`` constructor argument names (as in the parity ``config.json``)."""
        for name, implemented in _FIXED_UPSTREAM_ARGS.items():
            if name in args and args[name] != implemented:
                raise ConfigError(
                    f"ViT argument {name}={args[name]!r} is not supported ({implemented!r} only)"
                )
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in args.items() if k in names}
        if "window_block_indexes" in values:
            values["window_block_indexes"] = tuple(values["window_block_indexes"])
        return cls(**values)

    @property
    def out_channels(self) -> dict[str, int]:
        return {"res3": self.embed_dim // 2, "res4": self.embed_dim, "res5": self.embed_dim}


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """[B, H, W, C] -> [B * nW, window, window, C], zero-padded up to multiples of ``window``."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> Tensor:
    """Inverse of ``window_partition``: [B * nW, window, window, C] -> [B, H, W, C]."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous() if (hp > h or wp > w) else x


def relative_position_table(size: int, table: Tensor) -> Tensor:
    """Table of relative embeddings for ``size`` queries and keys: [size, size, C].

    ``table`` [L, C] is linearly resized to 2 * size - 1 rows when its length differs (upstream
    ``get_rel_pos`` for equal query and key sizes); entry [q, k] is row q - k + size - 1.
    """
    rows = 2 * size - 1
    if table.shape[0] != rows:
        table = F.interpolate(table.t()[None], size=rows, mode="linear")[0].t()
    coords = torch.arange(size, device=table.device)
    return table[coords[:, None] - coords[None, :] + (size - 1)]


def absolute_position_embedding(pos_embed: Tensor, hw: tuple[int, int]) -> Tensor:
    """Stored (1, 1 + G*G, C) embedding (cls slot first) -> [1, H, W, C] for an H x W token grid."""
    grid = pos_embed[:, 1:]
    side = math.isqrt(grid.shape[1])
    grid = grid.reshape(1, side, side, -1)
    if (side, side) == tuple(hw):
        return grid
    resized = F.interpolate(
        grid.permute(0, 3, 1, 2), size=hw, mode="bicubic", align_corners=False, antialias=False
    )
    return resized.permute(0, 2, 3, 1)


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative positions (MViTv2 / ViTDet)."""

    def __init__(self, *, dim: int, num_heads: int, rel_pos_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        b, h, w, _ = x.shape
        heads = b * self.num_heads
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, heads, h * w, -1).unbind(0)  # each [B * heads, HW, d]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = self._add_relative(attn, q, h, w).softmax(dim=-1)
        out = (
            (attn @ v).view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        )
        return self.proj(out)

    def _add_relative(self, attn: Tensor, q: Tensor, h: int, w: int) -> Tensor:
        """attn [BH, HW, HW] + decomposed relative-position logits (from the unscaled q)."""
        rh = relative_position_table(h, self.rel_pos_h).to(q.dtype)
        rw = relative_position_table(w, self.rel_pos_w).to(q.dtype)
        grid_q = q.reshape(q.shape[0], h, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", grid_q, rh)
        rel_w = torch.einsum("bhwc,wkc->bhwk", grid_q, rw)
        attn = attn.view(-1, h, w, h, w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
        return attn.view(-1, h * w, h * w)


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear (timm ``Mlp`` with default arguments)."""

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; ``window > 0`` restricts attention to window x window tiles."""

    def __init__(self, *, config: ViTConfig, window: int, drop_path: float = 0.0) -> None:
        super().__init__()
        dim = config.embed_dim
        self.window = window
        self.drop_path = drop_path
        grid = window if window else config.img_size // config.patch_size
        self.norm1 = nn.LayerNorm(dim, eps=config.layernorm_eps)
        self.attn = Attention(dim=dim, num_heads=config.num_heads, rel_pos_size=grid)
        self.norm2 = nn.LayerNorm(dim, eps=config.layernorm_eps)
        self.mlp = Mlp(dim=dim, hidden=int(dim * config.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        y = self.norm1(x)
        if self.window:
            hw = (y.shape[1], y.shape[2])
            y, padded = window_partition(y, self.window)
            y = window_unpartition(self.attn(y), self.window, padded, hw)
        else:
            y = self.attn(y)
        x = x + drop_path(y, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchEmbed(nn.Module):
    """patch x patch convolution with stride patch, output channels-last."""

    def __init__(self, *, config: ViTConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.in_chans, config.embed_dim, kernel_size=p, stride=p)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C_in, H, W] -> [B, H/p, W/p, C] (floor)."""
        return self.proj(x).permute(0, 2, 3, 1)


class ViT(nn.Module):
    """UNINEXT's ViT backbone: [B, C_in, H, W] -> {res3: /8, res4: /16, res5: /32} (NCHW).

    res3 = ConvTranspose2d(C -> C/2, 2, stride 2) of the last block, res4 = the last block,
    res5 = 2x2 max-pool. No final norm.
    """

    size_divisibility = 32

    def __init__(self, *, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config=config)
        grid = config.pretrain_img_size // config.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, config.embed_dim))
        rates = linear_rates(config.drop_path_rate, config.depth)
        self.blocks = nn.ModuleList(
            Block(
                config=config,
                window=config.window_size if i in config.window_block_indexes else 0,
                drop_path=rates[i],
            )
            for i in range(config.depth)
        )
        dim = config.embed_dim
        self.fpn1 = nn.Sequential(nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2))
        self.fpn3 = nn.MaxPool2d(kernel_size=2, stride=2)

    @property
    def out_channels(self) -> dict[str, int]:
        return self.config.out_channels

    def forward_tokens(self, x: Tensor) -> Tensor:
        """[B, C_in, H, W] -> output of the last block [B, H/16, W/16, C] (channels-last)."""
        x = self.patch_embed(x)
        x = x + absolute_position_embedding(self.pos_embed, (x.shape[1], x.shape[2])).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        last = self.forward_tokens(x).permute(0, 3, 1, 2)
        return {"res3": self.fpn1(last), "res4": last, "res5": self.fpn3(last)}
