"""Parameter groups, AdamW and the step-decay schedule as upstream trains these models.

Groups (upstream's ``param_dicts``): the backbone at ``lr_backbone``, the text encoder at
``lr_text_encoder`` (or frozen: ``requires_grad`` off, as ``--freeze_text_encoder``), the
deformable attention's ``sampling_offsets`` / ``reference_points`` at ``lr x lr_linear_proj_mult``
(ReferFormer/MUTR; a multiplier of 1 folds them into the rest), and everything else at ``lr``.
Which group a parameter is in is the model's own rule (``TrainingHooks.param_group``).

The learning rate is a function of the step: ``base x gamma^(number of milestones <= epoch)``
(MultiStepLR stepped once per epoch) or ``<= step`` (``lr_drop_unit = "step"``: detectron2's
WarmupMultiStepLR), times the linear warm-up factor during the first ``warmup_steps``; the engine
sets it at every step, so the schedule has no state beyond the step counter. A model may exempt
parameters from weight decay (``TrainingHooks.no_weight_decay``: detectron2's norm and embedding
rules); they go to a ``<group>_no_decay`` group of the same rate.
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


NoDecay = Callable[[str, int], bool]
"""(parameter name, ndim) -> True where the parameter takes no weight decay."""


def param_groups(
    model: nn.Module,
    rule: Callable[[str], ParamGroup],
    optim: OptimConfig,
    no_weight_decay: NoDecay | None = None,
) -> list[dict]:
    """AdamW groups of the trainable parameters, in GROUP_ORDER (empty groups left out; each
    group's exempt parameters right after it as ``<group>_no_decay``); each group carries its
    name, base learning rate and weight decay."""
    rates = base_rates(optim)
    members: dict[tuple[str, bool], list[nn.Parameter]] = {
        (name, exempt): [] for name in GROUP_ORDER for exempt in (False, True)
    }
    for name, param in model.named_parameters():
        if param.requires_grad:
            exempt = no_weight_decay is not None and no_weight_decay(name, param.ndim)
            members[rule(name), exempt].append(param)
    return [
        {
            "name": f"{group}_no_decay" if exempt else group,
            "params": params,
            "lr": rates[group],
            "base_lr": rates[group],
            "weight_decay": 0.0 if exempt else optim.weight_decay,
        }
        for (group, exempt), params in members.items()
        if params
    ]


def build_optimizer(
    model: nn.Module,
    rule: Callable[[str], ParamGroup],
    optim: OptimConfig,
    no_weight_decay: NoDecay | None = None,
) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` with the config's weight decay (upstream's defaults else)."""
    return torch.optim.AdamW(
        param_groups(model, rule, optim, no_weight_decay),
        lr=optim.lr,
        weight_decay=optim.weight_decay,
    )


def decay_factor(optim: OptimConfig, epoch: int, step: int = 0) -> float:
    """gamma^(milestones passed) at ``epoch`` or ``step`` (0-based; ``optim.lr_drop_unit``)."""
    when = step if optim.lr_drop_unit == "step" else epoch
    return optim.lr_gamma ** bisect_right(list(optim.lr_drop), when)


def warmup_factor(optim: OptimConfig, step: int) -> float:
    """detectron2's linear warm-up: from ``warmup_factor`` at step 0 to 1 at ``warmup_steps``."""
    if step >= optim.warmup_steps:
        return 1.0
    alpha = step / optim.warmup_steps
    return optim.warmup_factor * (1 - alpha) + alpha


def set_learning_rates(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, epoch: int, step: int = 0
) -> None:
    """Every group's rate for ``step`` of ``epoch``."""
    factor = decay_factor(optim, epoch, step) * warmup_factor(optim, step)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
