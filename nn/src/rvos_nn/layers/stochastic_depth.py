"""Stochastic depth ("drop path", Huang et al., ECCV 2016), as timm's ``DropPath`` applies it to a
residual branch in training: each sample's branch is dropped with probability ``rate`` and the kept
ones are scaled by 1 / (1 - rate); identity in evaluation or at rate 0."""

from __future__ import annotations

from torch import Tensor


def drop_path(residual: Tensor, rate: float, training: bool) -> Tensor:
    """residual [B, ...] -> the same shape, per-sample dropped (draws from torch's generator)."""
    if not training or rate == 0:
        return residual
    keep = 1.0 - rate
    shape = (residual.shape[0],) + (1,) * (residual.dim() - 1)
    return residual * residual.new_empty(shape).bernoulli_(keep) / keep


def linear_rates(rate: float, blocks: int) -> list[float]:
    """The per-block rates rising linearly from 0 to ``rate`` (``torch.linspace(0, rate, blocks)``)."""
    return [rate * i / max(blocks - 1, 1) for i in range(blocks)]
