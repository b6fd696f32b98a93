"""2-D Swin Transformer image encoder of AOT / DeAOT (last stage removed).

Paper: Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
ICCV 2021. Upstream: the mmdetection-style backbone ``networks/encoders/swin/swin_transformer.py``
of RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (``soc_test/AOT``; byte-identical in
yoxu515/aot-benchmark @ 75e46fe), built like ``build_swin_model('swin_large')``.

Same parameter names and shapes as upstream (strict loading of the competition checkpoints).
Behaviour kept on purpose: only ``len(depths) - 1`` stages are built; every block pads its
normalised map with zeros to a multiple of the window (padded tokens are not masked); odd blocks
always shift by ``window // 2`` and mask the nine regions of the padded map with -100; outputs are
``norm{i}`` of each stage before patch merging.
Differences: no dropout / checkpointing / absolute position embedding; stochastic depth (rate 0
unless ``rvos_vos.training`` sets it) is the only training path;
the window attention runs through ``scaled_dot_product_attention`` (same math); the module returns
the stage maps without repeating the last one (AOT's ``encode_image`` adds its projection itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_vos.layers import DropPath

# Mask value between tokens of different regions of a shifted window (upstream: -100, not -inf).
SHIFT_MASK = -100.0


@dataclass(frozen=True)
class SwinConfig:
    """Constructor arguments of the encoder (upstream names).

    ``depths`` / ``num_heads`` keep upstream's 4 entries; the last stage is never built.
    """

    embed_dim: int = 192
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (6, 12, 24, 48)
    window_size: int = 12
    patch_size: int = 4
    mlp_ratio: float = 4.0
    out_indices: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.num_heads) or len(self.depths) < 2:
            raise ConfigError("swin: depths and num_heads need the same length (>= 2)")
        if any(not 0 <= i < self.num_stages for i in self.out_indices):
            raise ConfigError(f"swin: out_indices must lie in 0..{self.num_stages - 1}")

    @property
    def num_stages(self) -> int:
        """Stages actually built (upstream removes the last one)."""
        return len(self.depths) - 1

    def stage_dim(self, stage: int) -> int:
        return self.embed_dim * 2**stage

    @classmethod
    def from_upstream(cls, args: Mapping[str, Any]) -> SwinConfig:
        """From upstream ``SwinTransformer(...)`` keyword arguments; training-only ones are ignored."""
        if args.get("ape", False):
            raise ConfigError("swin: absolute position embedding (ape=True) is not supported")
        if not args.get("patch_norm", True):
            raise ConfigError("swin: patch_norm=False is not supported")
        return cls(
            embed_dim=int(args.get("embed_dim", 96)),
            depths=tuple(int(d) for d in args["depths"]),
            num_heads=tuple(int(h) for h in args["num_heads"]),
            window_size=int(args.get("window_size", 7)),
            patch_size=int(args.get("patch_size", 4)),
            mlp_ratio=float(args.get("mlp_ratio", 4.0)),
            out_indices=tuple(int(i) for i in args.get("out_indices", (0, 1, 2))),
        )


SWIN_VARIANTS: dict[str, SwinConfig] = {
    "swin_large": SwinConfig(),
    "swin_base": SwinConfig(embed_dim=128, num_heads=(4, 8, 16, 32), window_size=7),
    "tiny": SwinConfig(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
}


def relative_position_index(window: int) -> Tensor:
    """int64 [window², window²]: index into the (2·window−1)² bias table for each token pair."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return delta[..., 0] * (2 * window - 1) + delta[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, *, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window))

    def position_bias(self) -> Tensor:
        """[heads, N, N] with N = window²."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: Tensor, region_mask: Tensor | None) -> Tensor:
        """windows: [B, nW, N, C]; region_mask: [nW, N, N] additive or None. Returns [B, nW, N, C]."""
        b, nw, n, c = windows.shape
        qkv = self.qkv(windows).reshape(b, nw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each [B, nW, heads, N, d]
        mask = self.position_bias()
        if region_mask is not None:
            mask = mask + region_mask[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


class Mlp(nn.Module):
    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def window_partition(x: Tensor, window: int) -> Tensor:
    """[B, H, W, C] (H, W multiples of window) -> [B, nW, window², C], windows in raster order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, -1, window * window, c)


def window_merge(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of window_partition: [B, nW, window², C] -> [B, H, W, C]."""
    b, _, _, c = windows.shape
    x = windows.reshape(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def shift_region_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> Tensor:
    """[nW, N, N]: 0 within a region of the rolled, padded map, SHIFT_MASK across regions."""
    regions = torch.zeros(hp, wp, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[rows, cols] = label
            label += 1
    ids = window_partition(regions[None, :, :, None], window)[0, :, :, 0]  # [nW, N]
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.where(diff != 0, SHIFT_MASK, 0.0)


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual."""

    def __init__(
        self, *, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim=dim, num_heads=num_heads, window=window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))
        self.drop_path = DropPath(batch_dim=0)

    def forward(self, x: Tensor, region_mask: Tensor) -> Tensor:
        """x: [B, H, W, C]; region_mask: the stage's shift mask (used by shifted blocks only)."""
        _, h, w, _ = x.shape
        win = self.window
        y = F.pad(self.norm1(x), (0, 0, 0, (-w) % win, 0, (-h) % win))
        hp, wp = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, win), region_mask if self.shift else None)
        y = window_merge(y, win, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :h, :w])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (row offset first), LayerNorm, bias-free linear 4C -> 2C."""

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]."""
        h, w = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = (x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2])
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class SwinStage(nn.Module):
    def __init__(self, *, config: SwinConfig, stage: int) -> None:
        super().__init__()
        dim, win = config.stage_dim(stage), config.window_size
        self.window = win
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim=dim,
                num_heads=config.num_heads[stage],
                window=win,
                shift=0 if j % 2 == 0 else win // 2,
                mlp_ratio=config.mlp_ratio,
            )
            for j in range(config.depths[stage])
        )
        last = stage == config.num_stages - 1
        self.downsample = None if last else PatchMerging(dim=dim)

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, C] -> [B, H, W, C] (before merging)."""
        h, w = x.shape[1:3]
        win = self.window
        hp, wp = -(-h // win) * win, -(-w // win) * win
        mask = shift_region_mask(hp, wp, win, win // 2, x.device)
        for block in self.blocks:
            x = block(x, mask)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, *, patch: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, image: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, ceil(H/p), ceil(W/p), C] (zero-padded right / bottom first)."""
        h, w = image.shape[-2:]
        image = F.pad(image, (0, (-w) % self.patch, 0, (-h) % self.patch))
        return self.norm(self.proj(image).permute(0, 2, 3, 1))


class SwinTransformer2D(nn.Module):
    """The encoder: ``forward(image [B, 3, H, W]) -> [B, C_i, H/2^(i+2), W/2^(i+2)]`` per out index."""

    def __init__(self, *, config: SwinConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(patch=config.patch_size, dim=config.embed_dim)
        self.layers = nn.ModuleList(
            SwinStage(config=config, stage=i) for i in range(config.num_stages)
        )
        for i in config.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(config.stage_dim(i)))

    def forward(self, image: Tensor) -> list[Tensor]:
        x = self.patch_embed(image)
        outs = []
        for i, stage in enumerate(self.layers):
            x = stage(x)
            if i in self.config.out_indices:
                outs.append(getattr(self, f"norm{i}")(x).permute(0, 3, 1, 2).contiguous())
            if stage.downsample is not None:
                x = stage.downsample(x)
        return outs
