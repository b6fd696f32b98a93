"""Pieces AOT and DeAOT share: sequence <-> map reshapes, sine position embedding, global and
local (windowed) attention, the FPN decoder, the training-only random masks (drop-path,
channel dropout).

Upstream: yoxu515/aot-benchmark @ 75e46fe and its competition copy RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0d (``soc_test/AOT``): ``networks/layers/{basic,position,attention}.py`` (``DropPath``, ``DWConv2d``'s ``Dropout2d``),
``networks/decoders/fpn.py`` (identical in both).

Differences: global attention runs through ``scaled_dot_product_attention`` (same math, no
[queries x memory] matrix kept); the local attention has no compiled correlation op: it is
computed over tiles of 8x8 queries as two batched matrix products against each tile's 22x22 keys
(a gather of the window logits, a scatter of the window weights), or, at inference on large maps,
as one shifted product per window position over a zero-padded map (the math of upstream's
pure-PyTorch ``MultiheadLocalAttentionV3`` / ``LocalGatedPropagation(enable_corr=False)`` and of
the correlation-sampler path). Out-of-map window positions get -inf
instead of -1e8 (both give weight 0 after the softmax). The random masks have rate 0 unless the
training sets one (``rvos_vos.training.stochastic``), and their draw is a method, so that recorded
masks can be replayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

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
        weight 0.

    Two computations of the same math: tiles (``_tiled_*``: a few large operations, what autograd
    differentiates and what small maps run) and, at inference on maps of more than
    ``TILED_MAX_POSITIONS`` positions, one shifted product per window position (``_shifted_*``:
    memory that of the inputs; faster there on CPU: bench/propagate/local_attention.py).
    """
    h, w = q.shape[-2:]
    tiled = torch.is_grad_enabled() or h * w <= TILED_MAX_POSITIONS
    logits = (_tiled_logits if tiled else _shifted_logits)(q, k) + bias
    logits = logits.masked_fill(~_inside(h, w, q.device), float("-inf"))
    attn = torch.softmax(logits, dim=2)
    return (_tiled_values if tiled else _shifted_values)(attn, v), attn


# Inference maps up to this many positions run tiled (CPU crossover, heads 8 x 32 channels).
TILED_MAX_POSITIONS = 512


def _tiled_logits(q: Tensor, k: Tensor) -> Tensor:
    """[N, heads, 225, h, w]: the window logits, tile by tile, from each tile's [queries x keys]
    product (tiles of up to 8x8 queries and their (8 + 14) x (8 + 14) keys, all at once)."""
    h, w = q.shape[-2:]
    tile = Tile.of(h, w)
    products = torch.matmul(tile.from_map(q), tile.keys(k))  # [N, heads, tiles, queries, keys]
    return tile.to_map(torch.gather(products, -1, tile.index(products)), h, w)


def _tiled_values(attn: Tensor, v: Tensor) -> Tensor:
    """[N, heads, dv, h, w]: the window weights scattered into each tile's [queries x keys]
    matrix, times the tile's values."""
    h, w = v.shape[-2:]
    tile = Tile.of(h, w)
    keys = tile.keys(v)  # [N, heads, tiles, dv, keys]
    weights = tile.from_map(attn.to(v.dtype))  # [N, heads, tiles, queries, 225]
    dense = weights.new_zeros(*weights.shape[:-1], keys.shape[-1])
    dense = dense.scatter(-1, tile.index(dense), weights)
    return tile.to_map(torch.matmul(dense, keys.transpose(-1, -2)), h, w)


def _shifted_logits(q: Tensor, k: Tensor) -> Tensor:
    h, w = q.shape[-2:]
    k_pad = F.pad(k, (MAX_DIS,) * 4)
    logits = q.new_empty(*q.shape[:2], (2 * MAX_DIS + 1) ** 2, h, w)
    for i, (dy, dx) in enumerate(_offsets()):
        logits[:, :, i] = (q * k_pad[..., dy : dy + h, dx : dx + w]).sum(dim=2)
    return logits


def _shifted_values(attn: Tensor, v: Tensor) -> Tensor:
    h, w = v.shape[-2:]
    v_pad = F.pad(v, (MAX_DIS,) * 4)
    out = torch.zeros_like(v)
    for i, (dy, dx) in enumerate(_offsets()):
        out.addcmul_(attn[:, :, i : i + 1].to(v.dtype), v_pad[..., dy : dy + h, dx : dx + w])
    return out


def _offsets() -> list[tuple[int, int]]:
    """Window positions as (row, column) offsets into the padded map, raster order."""
    win = 2 * MAX_DIS + 1
    return [(dy, dx) for dy in range(win) for dx in range(win)]


# Query tiles of local_attention: TILE x TILE queries; a map side up to ONE_TILE is one tile.
TILE, ONE_TILE = 8, 12


@dataclass(frozen=True)
class Tile:
    """local_attention's tiling: ``rows`` x ``cols`` queries per tile, the map padded at the
    bottom / right to whole tiles; each tile's keys are its (rows + 14) x (cols + 14) window."""

    rows: int
    cols: int

    @classmethod
    def of(cls, h: int, w: int) -> Tile:
        """A side of up to ``ONE_TILE`` positions is one tile, a longer one ``TILE``-long tiles."""
        return cls(*(n if n <= ONE_TILE else TILE for n in (h, w)))

    def _tiles(self, x: Tensor, halo: int) -> Tensor:
        """[N, heads, d, h, w] -> [N, heads, tiles, d, (rows + 2·halo)·(cols + 2·halo)]: each
        tile's positions and ``halo`` around them, zeros outside the map."""
        h, w = x.shape[-2:]
        bottom, right = -h % self.rows + halo, -w % self.cols + halo
        padded = F.pad(x, (halo, right, halo, bottom))
        tiles = padded.unfold(3, self.rows + 2 * halo, self.rows)
        tiles = tiles.unfold(4, self.cols + 2 * halo, self.cols)  # [N, a, d, tY, tX, R', C']
        return tiles.flatten(5).flatten(3, 4).transpose(2, 3)

    def keys(self, k: Tensor) -> Tensor:
        """[N, heads, d, h, w] -> [N, heads, tiles, d, keys]."""
        return self._tiles(k, MAX_DIS)

    def to_map(self, x: Tensor, h: int, w: int) -> Tensor:
        """[N, heads, tiles, rows·cols, c] -> [N, heads, c, h, w]."""
        n, heads, _, _, c = x.shape
        rows, cols = -(-h // self.rows), -(-w // self.cols)
        x = x.reshape(n, heads, rows, cols, self.rows, self.cols, c)
        x = x.permute(0, 1, 6, 2, 4, 3, 5).reshape(n, heads, c, rows * self.rows, -1)
        return x[..., :h, :w]

    def from_map(self, x: Tensor) -> Tensor:
        """[N, heads, c, h, w] -> [N, heads, tiles, rows·cols, c] (zeros past the map): the
        queries of each tile, or any per-query map."""
        return self._tiles(x, 0).transpose(-1, -2)

    def index(self, like: Tensor) -> Tensor:
        """int64 [..., rows·cols, 225] (expanded to ``like``'s leading dims): the key of each
        window position of each query of a tile."""
        index = _tile_index(self.rows, self.cols, like.device)
        return index.expand(*like.shape[:-1], -1)


@lru_cache(maxsize=32)
def _tile_index(rows: int, cols: int, device: torch.device) -> Tensor:
    win = 2 * MAX_DIS + 1
    offsets = torch.arange(win, device=device)
    key_rows = torch.arange(rows, device=device)[:, None] + offsets  # [rows, win]
    key_cols = torch.arange(cols, device=device)[:, None] + offsets  # [cols, win]
    index = key_rows[:, None, :, None] * (cols + 2 * MAX_DIS) + key_cols[None, :, None, :]
    return index.reshape(rows * cols, win * win)


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
