"""ConvNeXt with UNINEXT's parameter layout (the ConvNeXt-L backbone of UNINEXT).

Paper: Liu et al., "A ConvNet for the 2020s" (CVPR 2022); used by Yan et al., UNINEXT (CVPR 2023).
Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d,
``UNINEXT/projects/UNINEXT/uninext/backbone/convnext.py`` (``D2ConvNeXt``), identical to
MasterBin-IIAU/UNINEXT. Re-implemented from shared/parity/uninext/convnext/README.md.

Kept on purpose (checkpoint parity): every LayerNorm scale/shift and every layer-scale ``gamma`` is a
(1, C) table (upstream holds them in ``nn.Embedding(1, C)``), so the keys read
``...norm.weight.weight``; channels-first LayerNorms are the hand-written mean / biased-variance
form; extra output norms ``norm1..norm3`` on stages 1-3. Stochastic depth in training (``drop_path_rate``: ConvNeXt-L 0.7
rising linearly over the 36 blocks, as ``D2ConvNeXt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.layers.stochastic_depth import drop_path, linear_rates


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Stage depths and widths; layer-scale init 1.0 and LN eps 1e-6 as in every UNINEXT variant."""

    depths: tuple[int, ...] = (3, 3, 27, 3)
    dims: tuple[int, ...] = (192, 384, 768, 1536)
    in_chans: int = 3
    layernorm_eps: float = 1e-6
    drop_path_rate: float = 0.0

    @classmethod
    def large(cls, *, in_chans: int = 3) -> ConvNeXtConfig:
        return cls(
            depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536), in_chans=in_chans, drop_path_rate=0.7
        )

    @classmethod
    def tiny(cls, *, in_chans: int = 3) -> ConvNeXtConfig:
        """The parity fixture's ConvNeXt."""
        return cls(depths=(1, 1, 2, 1), dims=(32, 64, 128, 256), in_chans=in_chans)

    @classmethod
    def from_upstream(cls, args: Mapping[str, Any]) -> ConvNeXtConfig:
        """From upstream's ``ConvNeXt`` constructor argument names (as in the parity ``config.json``)."""
        return cls(
            depths=tuple(args["depths"]),
            dims=tuple(args["dims"]),
            in_chans=int(args.get("in_chans", 3)),
            layernorm_eps=float(args.get("layernorm_eps", 1e-6)),
        )

    @property
    def out_channels(self) -> dict[str, int]:
        return {"res3": self.dims[1], "res4": self.dims[2], "res5": self.dims[3]}


class Row(nn.Module):
    """A (1, C) parameter named ``weight`` (upstream's ``nn.Embedding(1, C)`` holder)."""

    def __init__(self, channels: int, value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels), value))


class LayerNorm(nn.Module):
    """LayerNorm over the channel dim with (1, C) tables; ``channels_first`` for [B, C, H, W]."""

    def __init__(self, channels: int, *, eps: float, channels_first: bool) -> None:
        super().__init__()
        self.weight = Row(channels, 1.0)
        self.bias = Row(channels, 0.0)
        self.eps = eps
        self.channels_first = channels_first

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self.weight.weight[0], self.bias.weight[0]
        if not self.channels_first:
            return F.layer_norm(x, (x.shape[-1],), scale, shift, self.eps)
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return scale[:, None, None] * x + shift[:, None, None]


class Block(nn.Module):
    """dwconv 7x7 -> LN -> Linear 4C -> GELU -> Linear C -> x gamma, plus the residual."""

    def __init__(self, dim: int, *, eps: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.drop_path = drop_path
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm(dim, eps=eps, channels_first=False)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = Row(dim, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        y = self.gamma.weight[0] * y
        return x + drop_path(y.permute(0, 3, 1, 2), self.drop_path, self.training)


class ConvNeXt(nn.Module):
    """[B, C_in, H, W] -> {res3: /8, res4: /16, res5: /32} (stages 1-3 after ``norm1..norm3``)."""

    size_divisibility = 32

    def __init__(self, *, config: ConvNeXtConfig) -> None:
        super().__init__()
        self.config = config
        dims, eps = config.dims, config.layernorm_eps
        stem = nn.Sequential(
            nn.Conv2d(config.in_chans, dims[0], kernel_size=4, stride=4),
            LayerNorm(dims[0], eps=eps, channels_first=True),
        )
        downsample = [
            nn.Sequential(
                LayerNorm(dims[i], eps=eps, channels_first=True),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2),
            )
            for i in range(3)
        ]
        self.downsample_layers = nn.ModuleList([stem, *downsample])
        rates = iter(linear_rates(config.drop_path_rate, sum(config.depths)))
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(Block(dims[i], eps=eps, drop_path=next(rates)) for _ in range(config.depths[i]))
            )
            for i in range(4)
        )
        for i in range(1, 4):
            self.add_module(f"norm{i}", LayerNorm(dims[i], eps=eps, channels_first=True))

    @property
    def out_channels(self) -> dict[str, int]:
        return self.config.out_channels

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The four stage outputs (stride 4 .. 32), stage 0 raw, stages 1-3 normalised."""
        outs = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            outs.append(getattr(self, f"norm{i}")(x) if i else x)
        return outs

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Stages 1-3; stage 0 (stride 4) is not among upstream's ``OUT_FEATURES``."""
        outs = self.forward_stages(x)
        return {"res3": outs[1], "res4": outs[2], "res5": outs[3]}
