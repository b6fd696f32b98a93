"""Video Swin Transformer as a per-frame feature pyramid (the MTTR wrapper used by the RVOS models).

Paper: Liu et al., "Video Swin Transformer", CVPR 2022; wrapper from Botach et al., "End-to-End
Referring Video Object Segmentation with Multimodal Transformers" (MTTR), CVPR 2022. Upstream:
``ReferFormer/models/video_swin_transformer.py`` (``VideoSwinTransformerBackbone``) in
RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d; MUTR's copy is identical, SOC's differs in names only.

Key layout (as in the RVOS checkpoints after ``backbone.0.body.``): ``patch_embed.{proj,norm}``,
``layers.i.blocks.j.{norm1, attn.{qkv, proj, relative_position_bias_table,
relative_position_index}, norm2, mlp.{fc1, fc2}}``, ``downsamples.i.{norm, reduction}`` (the patch
merging of stage i, moved out of ``layers.i``; none after the last stage; no final norm).

Behaviour kept from upstream: a temporal patch of 1 keeps one feature map per frame; per stage the
window shrinks to the input size on any axis that is not larger than it (and that axis is then not
shifted); tokens padded up to the window are zeros that take part in unshifted attention; a shrunk
window of N tokens uses the top-left N x N block of the full window's relative-position index (not
an index recomputed for the smaller window; exact when only time shrinks).

Training: stochastic depth as upstream (``drop_path_rate`` 0.2, rising linearly over the blocks
from 0, per sample, training mode only; the draws come from torch's generator, which the training
engine seeds per micro-batch). Dropout is not modelled (upstream's rate is 0).

Differences: the attention runs over chunks of windows and, in eval mode, the MLP over chunks of
tokens, which bounds the temporary memory of long clips without changing any value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_nn.layers.chunking import rowwise
from rvos_nn.layers.stochastic_depth import drop_path, linear_rates

Triple = tuple[int, int, int]
# Attention-matrix elements computed at once (window chunks; 2**25 float32 = 128 MiB).
ATTENTION_ELEMENTS = 1 << 25

# Upstream constructor arguments not modelled (the RVOS models leave dropout at 0 and do not
# checkpoint activations): accepted by VideoSwinConfig.from_upstream and ignored. Stochastic
# depth (drop_path_rate) is modelled: it acts in training mode only.
TRAINING_ONLY = frozenset({"drop_rate", "attn_drop_rate", "use_checkpoint"})


@dataclass(frozen=True)
class VideoSwinConfig:
    """Video-Swin hyperparameters (upstream names)."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    patch_size: Triple = (1, 4, 4)
    window_size: Triple = (8, 7, 7)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: float | None = None
    patch_norm: bool = True
    in_chans: int = 3
    drop_path_rate: float = 0.2

    @classmethod
    def from_upstream(cls, values: Mapping[str, Any]) -> VideoSwinConfig:
        """From upstream constructor arguments (``configs[name]`` of the RVOS code bases)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names - TRAINING_ONLY)
        if unknown:
            raise ConfigError(f"unknown Video-Swin setting(s): {', '.join(unknown)}")
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls(**kept)


# The upstream backbone names (``--backbone``) of the three RVOS code bases.
VIDEO_SWIN_CONFIGS: dict[str, VideoSwinConfig] = {
    "video_swin_t_p4w7": VideoSwinConfig(
        embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)
    ),
    "video_swin_s_p4w7": VideoSwinConfig(
        embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)
    ),
    "video_swin_b_p4w7": VideoSwinConfig(),
}


def effective_window(size: Triple, window: Triple, shift: Triple) -> tuple[Triple, Triple]:
    """Window and shift for an input of ``size`` (D, H, W): an axis not larger than the window
    uses its whole length as window and is not shifted."""
    use_window = tuple(s if s <= w else w for s, w in zip(size, window, strict=True))
    use_shift = tuple(0 if s <= w else h for s, w, h in zip(size, window, shift, strict=True))
    return use_window, use_shift  # type: ignore[return-value]


def window_partition(x: Tensor, window: Triple) -> Tensor:
    """[B, D, H, W, C] (multiples of the window) -> [B * nW, wd * wh * ww, C]."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def window_reverse(windows: Tensor, window: Triple, b: int, d: int, h: int, w: int) -> Tensor:
    """Inverse of ``window_partition``: [B * nW, wd * wh * ww, C] -> [B, D, H, W, C]."""
    wd, wh, ww = window
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def _region_ids(length: int, window: int, shift: int) -> Tensor:
    """Region label along one axis of the padded, rolled grid (as upstream's three slices)."""
    ids = torch.zeros(length, dtype=torch.float32)
    if shift > 0:
        ids[length - window : length - shift] = 1
        ids[length - shift :] = 2
    return ids


def shift_attention_mask(
    padded: Triple, window: Triple, shift: Triple, device: torch.device
) -> Tensor:
    """Additive mask [nW, N, N] of a shifted block: -100 between tokens of different regions."""
    d_ids, h_ids, w_ids = (
        _region_ids(n, w, s) for n, w, s in zip(padded, window, shift, strict=True)
    )
    labels = d_ids[:, None, None] * 9 + h_ids[None, :, None] * 3 + w_ids[None, None, :]
    windows = window_partition(labels[None, :, :, :, None], window).squeeze(-1)  # [nW, N]
    diff = windows[:, None, :] - windows[:, :, None]
    mask = torch.zeros_like(diff).masked_fill(diff != 0, -100.0)
    return mask.to(device)


def relative_position_index(window: Triple) -> Tensor:
    """[N, N] int64 index into the (2wd-1)(2wh-1)(2ww-1) bias table, tokens in (d, h, w) order."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([w - 1 for w in window])
    strides = torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return (rel * strides).sum(-1)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside 3-D windows with a relative-position bias."""

    def __init__(
        self,
        *,
        dim: int,
        window_size: Triple,
        num_heads: int,
        qkv_bias: bool,
        qk_scale: float | None,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        table_rows = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) * (2 * window_size[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_rows, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x: [B * nW, N, C]; mask: additive [nW, N, N] or None. Returns [B * nW, N, C].

        Windows are processed in chunks so that one chunk's attention matrices stay small.
        """
        windows, tokens, _ = x.shape
        index = self.relative_position_index[:tokens, :tokens].reshape(-1)
        bias = self.relative_position_bias_table[index].view(tokens, tokens, -1).permute(2, 0, 1)
        chunk = max(1, ATTENTION_ELEMENTS // (self.num_heads * tokens * tokens))
        out = torch.empty_like(x)
        for start in range(0, windows, chunk):
            stop = min(start + chunk, windows)
            window_mask = None
            if mask is not None:
                window_mask = mask[torch.arange(start, stop, device=mask.device) % mask.shape[0]]
            out[start:stop] = self._attend(x[start:stop], bias, window_mask)
        return out

    def _attend(self, x: Tensor, bias: Tensor, mask: Tensor | None) -> Tensor:
        """Upstream's arithmetic on a chunk of windows [w, N, C] (mask [w, N, N] or None)."""
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [w, heads, N, d]
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.to(q.dtype)[None]
        if mask is not None:
            attn = attn + mask[:, None].to(attn.dtype)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, channels)
        return self.proj(out)


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear (``fc1``, ``fc2``)."""

    def __init__(self, *, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinTransformerBlock3D(nn.Module):
    """Pre-norm window attention (shifted on odd blocks) and MLP, both residual."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: Triple,
        shift_size: Triple,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(
            dim=dim,
            window_size=window_size,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: Tensor, shift_mask: Tensor | None) -> Tensor:
        """x: [B, D, H, W, C]; shift_mask: the stage's mask for shifted blocks. Same shape out."""
        x = x + self._dropped(self._attention(x, shift_mask))
        if self.training and self.drop_path > 0:
            return x + self._dropped(self.mlp(self.norm2(x)))
        return rowwise(lambda t: t + self.mlp(self.norm2(t)), x)

    def _dropped(self, residual: Tensor) -> Tensor:
        """Stochastic depth in training (rvos_nn.layers.stochastic_depth)."""
        return drop_path(residual, self.drop_path, self.training)

    def _attention(self, x: Tensor, shift_mask: Tensor | None) -> Tensor:
        b, d, h, w, _ = x.shape
        window, shift = effective_window((d, h, w), self.window_size, self.shift_size)
        x = self.norm1(x)
        pads = [(n_win - n % n_win) % n_win for n, n_win in zip((d, h, w), window, strict=True)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        _, dp, hp, wp, _ = x.shape
        windows = self.attn(window_partition(x, window), shift_mask if shifted else None)
        x = window_reverse(windows, window, b, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :d, :h, :w].contiguous()


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks, unshifted and shifted in turn (``blocks.j``)."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: Triple,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop_paths: Sequence[float],
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size: Triple = tuple(w // 2 for w in window_size)  # type: ignore[assignment]
        self.blocks = nn.ModuleList(
            SwinTransformerBlock3D(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=(0, 0, 0) if i % 2 == 0 else self.shift_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_path=drop_paths[i],
            )
            for i in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, D, H, W, C] -> [B, D, H, W, C]."""
        size = tuple(x.shape[1:4])
        window, shift = effective_window(size, self.window_size, self.shift_size)  # type: ignore[arg-type]
        mask = None
        if any(s > 0 for s in shift):
            padded = tuple(-(-n // w) * w for n, w in zip(size, window, strict=True))
            mask = shift_attention_mask(padded, window, shift, x.device)  # type: ignore[arg-type]
        for block in self.blocks:
            x = block(x, mask)
        return x


class PatchMerging(nn.Module):
    """2x2 spatial merging: pad H, W to even, concatenate the four sub-grids, LayerNorm, Linear."""

    def __init__(self, *, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, D, H, W, C] -> [B, D, ceil(H/2), ceil(W/2), 2C]."""
        _, _, h, w, _ = x.shape
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, -1)))


class PatchEmbed3D(nn.Module):
    """Zero-pad to the patch grid, Conv3d with kernel = stride = patch, LayerNorm over channels."""

    def __init__(self, *, patch_size: Triple, in_chans: int, embed_dim: int, patch_norm: bool):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, D, H, W] -> channels-last [B, D', H', W', embed_dim]."""
        d, h, w = x.shape[2:]
        pd, ph, pw = ((p - n % p) % p for n, p in zip((d, h, w), self.patch_size, strict=True))
        x = F.pad(x, (0, pw, 0, ph, 0, pd))
        x = self.proj(x).permute(0, 2, 3, 4, 1)
        return x if self.norm is None else self.norm(x)


class VideoSwinBackbone(nn.Module):
    """Video-Swin returning every stage before its patch merging, one map per frame.

    ``video_swin_b_p4w7`` (the RVOS models): patch (1, 4, 4), embed 128, depths [2, 2, 18, 2],
    heads [4, 8, 16, 32], window (8, 7, 7). Stage i has ``embed_dim * 2**i`` channels at stride
    ``4 * 2**i``.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        patch_size: Triple = (1, 4, 4),
        window_size: Triple = (8, 7, 7),
        in_chans: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        patch_norm: bool = True,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        self.patch_embed = PatchEmbed3D(
            patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, patch_norm=patch_norm
        )
        self.num_channels = [embed_dim * 2**i for i in range(len(depths))]
        self.strides = [4 * 2**i for i in range(len(depths))]
        blocks = sum(depths)  # upstream's decay rule: linspace(0, rate, blocks)
        rates = linear_rates(drop_path_rate, blocks)
        firsts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            BasicLayer(
                dim=dim,
                depth=depth,
                num_heads=heads,
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_paths=rates[first : first + depth],
            )
            for dim, depth, heads, first in zip(
                self.num_channels, depths, num_heads, firsts, strict=True
            )
        )
        self.downsamples = nn.ModuleList(PatchMerging(dim=dim) for dim in self.num_channels[:-1])

    def forward(self, frames: Tensor, num_frames: int) -> list[Tensor]:
        """frames: [B * T, 3, H, W] (video-major). Returns per stage [B * T, C_i, H_i, W_i] with
        H_0 = ceil(H / 4) and H_(i+1) = ceil(H_i / 2) (likewise W)."""
        n, c, h, w = frames.shape
        videos = frames.view(n // num_frames, num_frames, c, h, w).transpose(1, 2)
        x = self.patch_embed(videos)
        outputs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            outputs.append(x.permute(0, 1, 4, 2, 3).flatten(0, 1).contiguous())
            if i < len(self.downsamples):
                x = self.downsamples[i](x)
        return outputs


def build_video_swin(config: VideoSwinConfig) -> VideoSwinBackbone:
    """The backbone of ``config`` with random weights."""
    return VideoSwinBackbone(
        embed_dim=config.embed_dim,
        depths=config.depths,
        num_heads=config.num_heads,
        patch_size=config.patch_size,
        window_size=config.window_size,
        in_chans=config.in_chans,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        qk_scale=config.qk_scale,
        patch_norm=config.patch_norm,
        drop_path_rate=config.drop_path_rate,
    )
