"""Parameter groups and the step schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rvos_train.config import OptimConfig
from rvos_train.optim import (
    build_optimizer,
    decay_factor,
    freeze_text_encoder,
    param_groups,
    set_learning_rates,
)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.text_encoder = nn.Linear(2, 2)
        self.head = nn.Linear(2, 2)


def rule(name: str) -> str:
    for group in ("backbone", "text_encoder"):
        if name.startswith(group):
            return group
    return "rest"


def test_groups_and_rates() -> None:
    optim = OptimConfig(lr=1e-4, lr_backbone=1e-5, lr_text_encoder=5e-6)
    groups = param_groups(Toy(), rule, optim)
    assert [(g["name"], g["lr"], len(g["params"])) for g in groups] == [
        ("rest", 1e-4, 2),
        ("backbone", 1e-5, 2),
        ("text_encoder", 5e-6, 2),
    ]


def test_frozen_text_encoder_has_no_group() -> None:
    model = Toy()
    assert freeze_text_encoder(model, rule) == 6
    names = [g["name"] for g in param_groups(model, rule, OptimConfig())]
    assert names == ["rest", "backbone"]


@pytest.mark.parametrize(("epoch", "factor"), [(0, 1.0), (2, 1.0), (3, 0.1), (4, 0.1), (5, 0.01)])
def test_multistep_schedule(epoch: int, factor: float) -> None:
    optim = OptimConfig(lr_drop=(3, 5), lr_gamma=0.1)
    assert decay_factor(optim, epoch) == pytest.approx(factor)
    optimizer = build_optimizer(Toy(), rule, optim)
    set_learning_rates(optimizer, optim, epoch)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [g["base_lr"] * factor for g in optimizer.param_groups]
    )
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["weight_decay"] == optim.weight_decay


@pytest.mark.parametrize(
    ("step", "factor"), [(0, 0.001), (50, 0.5005), (100, 1.0), (299, 1.0), (300, 0.1), (400, 0.01)]
)
def test_iteration_schedule_with_warmup(step: int, factor: float) -> None:
    """detectron2's WarmupMultiStepLR: linear warm-up from warmup_factor, milestones in steps."""
    optim = OptimConfig(
        lr_drop=(300, 400), lr_drop_unit="step", warmup_steps=100, warmup_factor=0.001
    )
    optimizer = build_optimizer(Toy(), rule, optim)
    set_learning_rates(optimizer, optim, epoch=0, step=step)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [g["base_lr"] * factor for g in optimizer.param_groups]
    )


def test_no_weight_decay_groups() -> None:
    """Exempt parameters (here the biases) get their own group at the same rate, decay 0."""
    optim = OptimConfig(lr=1e-4, lr_backbone=1e-5, weight_decay=0.05)
    groups = param_groups(Toy(), rule, optim, lambda name, ndim: ndim == 1)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("rest", 1e-4, 0.05),
        ("rest_no_decay", 1e-4, 0.0),
        ("backbone", 1e-5, 0.05),
        ("backbone_no_decay", 1e-5, 0.0),
        ("text_encoder", optim.lr_text_encoder, 0.05),
        ("text_encoder_no_decay", optim.lr_text_encoder, 0.0),
    ]
