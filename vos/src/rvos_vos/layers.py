"""Pieces AOT and DeAOT share: sequence <-> map reshapes, sine position embedding, global and
local (windowed) attention, the FPN decoder, the training-only random masks (drop-path,
channel dropout).

Upstream: yoxu515/aot-benchmark @ 75e46fe and its competition copy RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0d (``soc_test/AOT``): ``networks/layers/{basic,position,attention}.py`` (``DropPath``, ``DWConv2d``'s ``Dropout2d``),
``networks/decoders/fpn.py`` (identical in both).

Differences: global attention runs through ``scaled_dot_product_attention`` (same math, no
[queries x memory] matrix kept); the local attention is written once, as one shifted product per
window position over a zero-padded map (the math of upstream's pure-PyTorch
``MultiheadLocalAttentionV3`` / ``LocalGatedPropagation(enable_corr=False)`` and of the
correlation-sampler path), so no compiled correlation op is needed and neither a [queries x map]
matrix nor an unfolded copy of the keys / values is built. Out-of-map window positions get -inf
instead of -1e8 (both give weight 0 after the softmax). The random masks have rate 0 unless the
training sets one (``rvos_vos.training.stochastic``), and their draw is a method, so that recorded
masks can be replayed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Short-term (local) attention window radius: 15x15 windows (upstream max_dis 7, dilation 1).
MAX_DIS = 7


def seq_to_2d(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[h·w, N, C] -> [N, C, h, w]."""
    h, w = size
    return x.reshape(h, w, x.shape[1], x.shape[2]).permute(2, 3, 0, 1)


def map_to_seq(x: Tensor) -> Tensor:
    """[N, C, h, w] -> [h·w, N, C]."""
    return x.flatten(2).permute(2, 0, 1)


def sine_position_embedding(h: int, w: int, channels: int, device: torch.device) -> Tensor:
    """[h·w, 1, channels]: DETR-style sine embedding, y block first, normalised coordinates.

    Coordinates 0..n-1 are divided by (n-1 + 1e-6) and scaled by 2π; frequencies
    10000^(2·(i//2)/(channels/2)); sin on even, cos on odd channels of each block.
    """
    feats = channels // 2
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    ys = ys / (ys[-1:] + 1e-6) * (2 * math.pi)
    xs = xs / (xs[-1:] + 1e-6) * (2 * math.pi)
    dim_t = torch.arange(feats, device=device, dtype=torch.float32)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)

    def encode(values: Tensor) -> Tensor:
        phase = values[:, None] / dim_t
        return torch.stack((phase[:, 0::2].sin(), phase[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(ys)[:, None, :].expand(h, w, feats)
    pos_x = encode(xs)[None, :, :].expand(h, w, feats)
    return torch.cat((pos_y, pos_x), dim=2).reshape(h * w, 1, channels)


def multihead_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Softmax attention of sequence-first tensors, scale 1/sqrt(head width of q).

    Args:
        q: [Lq, N, heads·dk]; k: [Lk, N, heads·dk]; v: [Lk, N, heads·dv].

    Returns:
        [Lq, N, heads·dv], heads concatenated.
    """

    def split(x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], heads, -1).permute(1, 2, 0, 3)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.permute(2, 0, 1, 3).flatten(2)


def local_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """Attention of every position to the 15x15 window around it (zero-padded borders).

    Args:
        q: [N, heads, dk, h, w], already scaled; k: [N, heads, dk, h, w];
        v: [N, heads, dv, h, w]; bias: [N, heads, 225, h, w] added to the logits (window
            positions in raster order, row offset first).

    Returns:
        (out [N, heads, dv, h, w], attention [N, heads, 225, h, w]); positions outside the map get
        weight 0. Without autograd (inference): one shifted product per window position, no
        unfolded copy of k or v (memory stays that of the inputs). With autograd (training): the
        windows unfolded once (225 x the size of k and v), which autograd differentiates in a few
        large operations instead of 900 small ones.
    """
    h, w = q.shape[-2:]
    unfolded = torch.is_grad_enabled()
    k_pad = F.pad(k, (MAX_DIS,) * 4)
    if unfolded:
        logits = bias + (q.unsqueeze(3) * _windows(k_pad, h, w)).sum(dim=2)
    else:
        logits = bias.clone()
        for i, (dy, dx) in enumerate(_offsets()):
            logits[:, :, i] += (q * k_pad[..., dy : dy + h, dx : dx + w]).sum(dim=2)
    logits = logits.masked_fill(~_inside(h, w, q.device), float("-inf"))
    attn = torch.softmax(logits, dim=2)
    v_pad = F.pad(v, (MAX_DIS,) * 4)
    if unfolded:
        return (attn.unsqueeze(2).to(v.dtype) * _windows(v_pad, h, w)).sum(dim=3), attn
    out = torch.zeros_like(v)
    for i, (dy, dx) in enumerate(_offsets()):
        out.addcmul_(attn[:, :, i : i + 1].to(v.dtype), v_pad[..., dy : dy + h, dx : dx + w])
    return out, attn


def _windows(padded: Tensor, h: int, w: int) -> Tensor:
    """[N, heads, d, h + 14, w + 14] -> [N, heads, d, 225, h, w]: each position's 15x15 window,
    window positions in raster order (as ``_offsets``)."""
    n, heads, d = padded.shape[:3]
    win = 2 * MAX_DIS + 1
    cols = F.unfold(padded.reshape(n * heads, d, *padded.shape[-2:]), kernel_size=win)
    return cols.view(n, heads, d, win * win, h, w)


def _offsets() -> list[tuple[int, int]]:
    """Window positions as (row, column) offsets into the padded map, raster order."""
    win = 2 * MAX_DIS + 1
    return [(dy, dx) for dy in range(win) for dx in range(win)]


def _inside(h: int, w: int, device: torch.device) -> Tensor:
    """bool [225, h, w]: whether each window position of each query lies inside the map."""
    win = 2 * MAX_DIS + 1
    offsets = torch.arange(win, device=device) - MAX_DIS
    ys = offsets[:, None] + torch.arange(h, device=device)  # [win, h]
    xs = offsets[:, None] + torch.arange(w, device=device)  # [win, w]
    in_y = (ys >= 0) & (ys < h)
    in_x = (xs >= 0) & (xs < w)
    return (in_y[:, None, :, None] & in_x[None, :, None, :]).reshape(win * win, h, w)


def normalize_outputs(
    outputs: list[Tensor], norms: nn.ModuleList, intermediate: bool
) -> list[Tensor]:
    """Output norms of a propagation stack: the last norm on the final output, and the others on
    the intermediate outputs when the decoder uses them (they stay raw otherwise)."""
    last = norms[-1](outputs[-1])
    if not intermediate:
        return [*outputs[:-1], last]
    return [norm(o) for norm, o in zip(norms[:-1], outputs[:-1], strict=True)] + [last]


class ConvGN(nn.Module):
    """Convolution ('same' padding) followed by GroupNorm."""

    def __init__(self, *, indim: int, outdim: int, kernel: int, groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(indim, outdim, kernel, padding=kernel // 2)
        self.gn = nn.GroupNorm(groups, outdim)

    def forward(self, x: Tensor) -> Tensor:
        return self.gn(self.conv(x))


class FPNDecoder(nn.Module):
    """Upstream ``FPNSegmentationHead``: /16 -> /8 -> /4 with encoder shortcuts, id logits out."""

    def __init__(
        self,
        *,
        in_dim: int,
        out_dim: int,
        hidden: int,
        shortcut_dims: tuple[int, ...],
        concat_inputs: bool,
    ) -> None:
        super().__init__()
        self.concat_inputs = concat_inputs
        self.conv_in = ConvGN(indim=in_dim, outdim=hidden, kernel=1)
        self.conv_16x = ConvGN(indim=hidden, outdim=hidden, kernel=3)
        self.conv_8x = ConvGN(indim=hidden, outdim=hidden // 2, kernel=3)
        self.conv_4x = ConvGN(indim=hidden // 2, outdim=hidden // 2, kernel=3)
        self.adapter_16x = nn.Conv2d(shortcut_dims[-2], hidden, 1)
        self.adapter_8x = nn.Conv2d(shortcut_dims[-3], hidden, 1)
        self.adapter_4x = nn.Conv2d(shortcut_dims[-4], hidden // 2, 1)
        self.conv_out = nn.Conv2d(hidden // 2, out_dim, 1)

    def forward(self, inputs: list[Tensor], shortcuts: list[Tensor]) -> Tensor:
        """inputs: [N, C_i, h, w] maps at /16; shortcuts: the 4 encoder maps. -> [N, out, H/4, W/4]."""
        x = torch.cat(inputs, dim=1) if self.concat_inputs else inputs[-1]
        x = F.relu(self.conv_in(x))
        x = F.relu(self.conv_16x(self.adapter_16x(shortcuts[-2]) + x))
        x = _upsample(x, shortcuts[-3])
        x = F.relu(self.conv_8x(self.adapter_8x(shortcuts[-3]) + x))
        x = _upsample(x, shortcuts[-4])
        x = F.relu(self.conv_4x(self.adapter_4x(shortcuts[-4]) + x))
        return self.conv_out(x)


def _upsample(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RandomMask(nn.Module):
    """Base of the training-only random masks: identity at ``rate`` 0 or in eval mode; otherwise
    ``x / keep · mask`` with keep = 1 - rate and a 0/1 mask from ``draw`` broadcast over ``x``."""

    def __init__(self) -> None:
        super().__init__()
        self.rate = 0.0

    def draw(self, shape: tuple[int, ...], keep: float, like: Tensor) -> Tensor:
        """A 0/1 mask of ``shape`` in ``like``'s dtype, 1 with probability ``keep``."""
        return (keep + torch.rand(shape, dtype=like.dtype, device=like.device)).floor()

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        """The shape of the mask ``draw`` makes for ``x``."""
        raise NotImplementedError

    def broadcast_shape(self, x: Tensor) -> tuple[int, ...]:
        """The mask's shape as it broadcasts over ``x``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = self.draw(self.mask_shape(x), keep, x)
        return x / keep * mask.reshape(self.broadcast_shape(x))


class DropPath(RandomMask):
    """Stochastic depth of a residual branch: one mask entry per sample along ``batch_dim``."""

    def __init__(self, *, batch_dim: int) -> None:
        super().__init__()
        self.batch_dim = batch_dim

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[self.batch_dim],)

    def broadcast_shape(self, x: Tensor) -> tuple[int, ...]:
        return tuple(n if i == self.batch_dim else 1 for i, n in enumerate(x.shape))


class ChannelDropout(RandomMask):
    """``Dropout2d``: whole channels of a [N, C, h, w] map, one mask entry per (sample, channel)."""

    def mask_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[1])

    def broadcast_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[1], 1, 1)
