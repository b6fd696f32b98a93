"""Parameter groups, AdamW and the step-decay schedule as upstream trains these models.

Groups (upstream's ``param_dicts``): the backbone at ``lr_backbone``, the text encoder at
``lr_text_encoder`` (or frozen: ``requires_grad`` off, as ``--freeze_text_encoder``), the
deformable attention's ``sampling_offsets`` / ``reference_points`` at ``lr x lr_linear_proj_mult``
(ReferFormer/MUTR; a multiplier of 1 folds them into the rest), and everything else at ``lr``.
Which group a parameter is in is the model's own rule (``TrainingHooks.param_group``).

The learning rate is a function of the epoch (MultiStepLR stepped once per epoch): ``base x
gamma^(number of milestones <= epoch)``; the engine sets it at every step, so the schedule has no
state beyond the step counter.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

import torch
from torch import nn

from rvos_nn.training import ParamGroup
from rvos_train.config import OptimConfig

GROUP_ORDER: tuple[str, ...] = ("rest", "backbone", "text_encoder", "linear_proj")


def freeze_text_encoder(model: nn.Module, rule: Callable[[str], ParamGroup]) -> int:
    """Turn off gradients of the text encoder's parameters; returns how many were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if rule(name) == "text_encoder":
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def base_rates(optim: OptimConfig) -> dict[str, float]:
    """The initial learning rate of each group."""
    return {
        "rest": optim.lr,
        "backbone": optim.lr_backbone,
        "text_encoder": optim.lr_text_encoder,
        "linear_proj": optim.lr * optim.lr_linear_proj_mult,
    }


def param_groups(
    model: nn.Module, rule: Callable[[str], ParamGroup], optim: OptimConfig
) -> list[dict]:
    """AdamW groups of the trainable parameters, in GROUP_ORDER (empty groups left out); each
    group carries its name and base learning rate."""
    rates = base_rates(optim)
    members: dict[str, list[nn.Parameter]] = {name: [] for name in GROUP_ORDER}
    for name, param in model.named_parameters():
        if param.requires_grad:
            members[rule(name)].append(param)
    return [
        {"name": group, "params": params, "lr": rates[group], "base_lr": rates[group]}
        for group, params in members.items()
        if params
    ]


def build_optimizer(
    model: nn.Module, rule: Callable[[str], ParamGroup], optim: OptimConfig
) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` with the config's weight decay (upstream's defaults else)."""
    return torch.optim.AdamW(
        param_groups(model, rule, optim), lr=optim.lr, weight_decay=optim.weight_decay
    )


def decay_factor(optim: OptimConfig, epoch: int) -> float:
    """gamma^(milestones passed) at ``epoch`` (0-based)."""
    return optim.lr_gamma ** bisect_right(list(optim.lr_drop), epoch)


def set_learning_rates(optimizer: torch.optim.Optimizer, optim: OptimConfig, epoch: int) -> None:
    """Every group's rate for ``epoch``."""
    factor = decay_factor(optim, epoch)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
