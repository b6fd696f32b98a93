"""Training-time random masks of AOT / DeAOT: Swin stochastic depth, the propagation layers'
drop-path and DeAOT's depth-wise-convolution channel dropout.

Papers: see ``rvos_vos.training.schedule``; stochastic depth: Huang et al., "Deep Networks with
Stochastic Depth" (ECCV 2016). Upstream: yoxu515/aot-benchmark @ 601c138
``networks/encoders/swin/swin_transformer.py`` (``drop_path_rate`` spread linearly over all
configured blocks, the 4th stage included though never built; frozen stages get none),
``networks/layers/transformer.py`` (``droppath`` = ``TRAIN_LSTT_DROPPATH`` on the self-attention and
feed-forward residuals of AOT, on both self-propagation residuals of DeAOT, drawn separately),
``networks/layers/basic.py`` (``DropPath``; ``DWConv2d``: ``Dropout2d(p=0.1)``, fixed in code).

Differences: the rates live on the modules (``rvos_vos.layers.RandomMask``, 0 by default) and are
set here rather than in the constructors; ``TRAIN_LSTT_DROPPATH_SCALING`` and the long/short-term
drop-path option (``TRAIN_LSTT_DROPPATH_LST``) are not supported (False in every stock config;
``TrainSchedule.from_upstream`` refuses them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rvos_vos.layers import ChannelDropout, DropPath, RandomMask
from rvos_vos.network import PropagationNet

# DeAOT's DWConv2d dropout (upstream constructor default, not a config value).
DWCONV_DROPOUT = 0.1


@dataclass(frozen=True)
class DropoutRates:
    """``swin_drop_path``: the encoder's ``drop_path_rate``; ``lstt_drop_path``: TRAIN_LSTT_DROPPATH;
    ``dwconv_dropout``: DeAOT's channel dropout; ``freeze_at``: TRAIN_ENCODER_FREEZE_AT (stages
    0..freeze_at-2 are frozen and get no drop-path)."""

    swin_drop_path: float = 0.3
    lstt_drop_path: float = 0.1
    dwconv_dropout: float = DWCONV_DROPOUT
    freeze_at: int = 2


def swin_block_rates(depths: tuple[int, ...], rate: float) -> list[list[float]]:
    """Per stage, per block: ``linspace(0, rate, sum(depths))`` in block order."""
    spread = torch.linspace(0, rate, sum(depths)).tolist()
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [spread[start : start + depth] for start, depth in zip(starts, depths, strict=True)]


def set_dropout_rates(net: PropagationNet, rates: DropoutRates) -> dict[str, float]:
    """Set the rate of every random mask of ``net``; returns {module name: rate} of those above 0."""
    swin = net.config.swin
    frozen_stages = rates.freeze_at - 1 if rates.freeze_at >= 2 else 0
    per_stage = swin_block_rates(swin.depths, rates.swin_drop_path)
    for i, stage in enumerate(net.encoder.layers):
        for block, rate in zip(stage.blocks, per_stage[i], strict=True):
            block.drop_path.rate = 0.0 if i < frozen_stages else rate
    for module in net.LSTT.modules():
        if isinstance(module, DropPath):
            module.rate = rates.lstt_drop_path
        elif isinstance(module, ChannelDropout):
            module.rate = rates.dwconv_dropout
    return active_rates(net)


def active_rates(net: nn.Module) -> dict[str, float]:
    """{module name: rate} of the random masks of ``net`` with a rate above 0."""
    return {
        name: m.rate for name, m in net.named_modules() if isinstance(m, RandomMask) and m.rate > 0
    }
