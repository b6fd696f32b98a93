"""Optimizer side of AOT / DeAOT training: the encoder parts frozen by ``TRAIN_ENCODER_FREEZE_AT``,
one AdamW parameter group per parameter with upstream's weight-decay exemptions, the per-step
learning rates (encoder ratio, parameters frozen during sequential training) and AdamW.

Papers: see ``rvos_vos.training.schedule``. Upstream: yoxu515/aot-benchmark @ 601c138
``utils/learning.py`` (``get_trainable_params``, ``adjust_learning_rate``),
``networks/managers/trainer.py`` (``Trainer.__init__``: AdamW), ``networks/encoders/swin/swin_transformer.py``
(``_freeze_stages``).

Differences: group names are our state-dict keys (upstream prefixes ``AOT.`` or ``module.AOT.``;
every rule is a substring match that the prefix does not change). Only the Swin encoder's rule for
1-D parameters is implemented (upstream decays frozen-BN weights of CNN encoders).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rvos_vos.training.schedule import TrainSchedule

ENCODER_KEY = "encoder."


def frozen_encoder_prefixes(freeze_at: int) -> tuple[tuple[str, ...], str | None]:
    """Upstream Swin ``_freeze_stages`` with ``frozen_stages = freeze_at``: the patch embedding
    (any ``freeze_at >= 0``) and, for ``freeze_at >= 2``, stages 0..freeze_at-2 entirely, except the
    patch merging of the last of them (re-enabled; only that one). Returns (frozen name prefixes,
    re-enabled prefix or None)."""
    if freeze_at < 0:
        return (), None
    if freeze_at < 2:
        return ("encoder.patch_embed.",), None
    stages = tuple(f"encoder.layers.{i}." for i in range(freeze_at - 1))
    return ("encoder.patch_embed.", *stages), f"encoder.layers.{freeze_at - 2}.downsample."


def freeze_encoder_stages(net: nn.Module, freeze_at: int) -> list[str]:
    """Set ``requires_grad=False`` on the encoder parameters ``TRAIN_ENCODER_FREEZE_AT`` freezes
    (``frozen_encoder_prefixes``). Returns the frozen parameter names."""
    frozen_prefixes, kept = frozen_encoder_prefixes(freeze_at)
    frozen = []
    for name, param in net.named_parameters():
        if name.startswith(frozen_prefixes) and not (kept and name.startswith(kept)):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def weight_decay_for(name: str, ndim: int, schedule: TrainSchedule) -> float:
    """1-D parameters (biases, norm affines) and names containing an exemption get 0."""
    if ndim == 1 or any(key in name for key in schedule.weight_decay_exemptions):
        return 0.0
    return schedule.weight_decay


def lr_kind(name: str) -> str:
    """``'encoder'`` for names containing ``encoder.`` (not ``encoder_projector``), else ``'other'``."""
    return "encoder" if ENCODER_KEY in name else "other"


def parameter_groups(net: nn.Module, schedule: TrainSchedule) -> list[dict[str, Any]]:
    """One group per trainable parameter: ``{"params", "lr", "weight_decay", "name"}`` (shared
    tensors once, frozen ones left out), the LR at ``schedule.lr`` until ``set_learning_rates``."""
    groups, seen = [], set()
    for name, param in net.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        decay = weight_decay_for(name, param.ndim, schedule)
        groups.append({"params": [param], "lr": schedule.lr, "weight_decay": decay, "name": name})
    return groups


def build_optimizer(net: nn.Module, schedule: TrainSchedule) -> torch.optim.AdamW:
    """AdamW (torch defaults: betas 0.9 / 0.999, eps 1e-8) over ``parameter_groups``."""
    groups = parameter_groups(net, schedule)
    return torch.optim.AdamW(groups, lr=schedule.lr, weight_decay=schedule.weight_decay)


def set_learning_rates(
    optimizer: torch.optim.Optimizer, schedule: TrainSchedule, step: int
) -> float:
    """Set every named group's LR for ``step``; during sequential training the groups matching
    ``seq_training_freeze`` get LR 0 and weight decay 0 (for good). Returns the base LR."""
    frozen = schedule.frozen_names(step)
    for group in optimizer.param_groups:
        name = group["name"]
        encoder = lr_kind(name) == "encoder"
        group["lr"] = schedule.encoder_lr(step) if encoder else schedule.base_lr(step)
        if any(key in name for key in frozen):
            group["lr"], group["weight_decay"] = 0.0, 0.0
    return schedule.base_lr(step)
