"""Step-dependent training values of AOT / DeAOT: learning rate (warm-up + poly, or cosine, with
restarts), the encoder's reduced LR, the auxiliary (reference-frame) loss weight, the top-k
fraction of the bootstrapped cross-entropy and the switch to sequential training.

Papers: Yang, Wei & Yang, "Associating Objects with Transformers for Video Object Segmentation"
(NeurIPS 2021); Yang & Yang, "Decoupling Features in Hierarchical Propagation for Video Object
Segmentation" (NeurIPS 2022). Upstream (the training code; the competition copy
RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d ``soc_test/AOT`` / ``soc_test/DEAOT`` carries no
trainer changes of its own and is not the fixture's source): yoxu515/aot-benchmark @ 601c138
(training math identical to 75e46fe): ``utils/learning.py`` (``adjust_learning_rate``),
``networks/engines/aot_engine.py`` (``_init_losses``, the aux weight), ``networks/layers/loss.py``
(the hard-mining ratio), ``networks/managers/trainer.py`` (sequential-training start),
``configs/default.py``, ``configs/pre.py``, ``configs/pre_ytb_dav.py``.

Upstream quirks kept on purpose: the ``+1e-5`` in the aux-weight and hard-mining lengths (the aux
weight is 1e-5/S, not 0, at the end of its ramp; the top-k fraction at the end of mining is
0.15000000017); sequential training starts at ``int(ratio · total)`` inclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from rvos_core.errors import ConfigError

# Upstream adds this to the aux-loss and hard-mining lengths (quirk kept for parity).
LENGTH_EPS = 1e-5

# Upstream options whose paths are not reproduced: refused when set (truthy).
UNSUPPORTED = (
    "TRAIN_WEIGHT_DECAY_EXCLUSIVE",
    "TRAIN_ENABLE_PREV_FRAME",
    "MODEL_USE_PREV_PROB",
    "TRAIN_LSTT_DROPPATH_SCALING",
    "TRAIN_LSTT_DROPPATH_LST",
)


@dataclass(frozen=True)
class TrainSchedule:
    """The schedules of one training stage (upstream ``TRAIN_*`` names in comments).

    Attributes:
        total_steps: TRAIN_TOTAL_STEPS.
        lr / lr_min / lr_power: TRAIN_LR, TRAIN_LR_MIN, TRAIN_LR_POWER (poly decay).
        warm_up_ratio: TRAIN_LR_WARM_UP_RATIO (linear warm-up from lr_min over ratio · total).
        encoder_lr_ratio: TRAIN_LR_ENCODER_RATIO (applied above lr_min to ``encoder.`` names).
        cosine_decay / restarts: TRAIN_LR_COSINE_DECAY, TRAIN_LR_RESTART.
        aux_loss_weight / aux_loss_ratio: TRAIN_AUX_LOSS_WEIGHT, TRAIN_AUX_LOSS_RATIO.
        hard_mining_ratio / top_k_percent_pixels: TRAIN_HARD_MINING_RATIO,
            TRAIN_TOP_K_PERCENT_PIXELS.
        seq_training_start_ratio / seq_training_freeze: TRAIN_SEQ_TRAINING_START_RATIO,
            TRAIN_SEQ_TRAINING_FREEZE_PARAMS (name substrings with LR and WD 0 while sequential).
        weight_decay / weight_decay_exemptions: TRAIN_WEIGHT_DECAY, TRAIN_WEIGHT_DECAY_EXEMPTION.
        clip_grad_norm: TRAIN_CLIP_GRAD_NORM.
        long_term_gap: TRAIN_LONG_TERM_MEM_GAP (frames between long-term memory writes).
    """

    total_steps: int = 100_000
    lr: float = 2e-4
    lr_min: float = 1e-5
    lr_power: float = 0.9
    warm_up_ratio: float = 0.05
    encoder_lr_ratio: float = 0.1
    cosine_decay: bool = False
    restarts: int = 1
    aux_loss_weight: float = 1.0
    aux_loss_ratio: float = 1.0
    hard_mining_ratio: float = 0.5
    top_k_percent_pixels: float = 0.15
    seq_training_start_ratio: float = 0.5
    seq_training_freeze: tuple[str, ...] = ("patch_wise_id_bank",)
    weight_decay: float = 0.07
    weight_decay_exemptions: tuple[str, ...] = (
        "absolute_pos_embed",
        "relative_position_bias_table",
        "relative_emb_v",
        "conv_out",
    )
    clip_grad_norm: float = 5.0
    long_term_gap: int = 2

    def __post_init__(self) -> None:
        if self.total_steps < 1 or self.restarts < 1 or self.long_term_gap < 1:
            raise ConfigError("total_steps, restarts and long_term_gap must be >= 1")
        if not 0.0 < self.top_k_percent_pixels < 1.0:
            raise ConfigError("top_k_percent_pixels must lie in (0, 1)")

    @classmethod
    def from_upstream(cls, cfg: Mapping[str, Any]) -> Self:
        """From an upstream config dump (``TRAIN_*`` names); missing names keep the defaults
        (``configs/default.py``). Options of paths not reproduced (``UNSUPPORTED``) are refused."""
        refused = [key for key in UNSUPPORTED if cfg.get(key)]
        if refused:
            raise ConfigError(f"not supported by rvos_vos.training: {', '.join(refused)}")
        names = {
            "total_steps": ("TRAIN_TOTAL_STEPS", int),
            "lr": ("TRAIN_LR", float),
            "lr_min": ("TRAIN_LR_MIN", float),
            "lr_power": ("TRAIN_LR_POWER", float),
            "warm_up_ratio": ("TRAIN_LR_WARM_UP_RATIO", float),
            "encoder_lr_ratio": ("TRAIN_LR_ENCODER_RATIO", float),
            "cosine_decay": ("TRAIN_LR_COSINE_DECAY", bool),
            "restarts": ("TRAIN_LR_RESTART", int),
            "aux_loss_weight": ("TRAIN_AUX_LOSS_WEIGHT", float),
            "aux_loss_ratio": ("TRAIN_AUX_LOSS_RATIO", float),
            "hard_mining_ratio": ("TRAIN_HARD_MINING_RATIO", float),
            "top_k_percent_pixels": ("TRAIN_TOP_K_PERCENT_PIXELS", float),
            "seq_training_start_ratio": ("TRAIN_SEQ_TRAINING_START_RATIO", float),
            "seq_training_freeze": ("TRAIN_SEQ_TRAINING_FREEZE_PARAMS", tuple),
            "weight_decay": ("TRAIN_WEIGHT_DECAY", float),
            "weight_decay_exemptions": ("TRAIN_WEIGHT_DECAY_EXEMPTION", tuple),
            "clip_grad_norm": ("TRAIN_CLIP_GRAD_NORM", float),
            "long_term_gap": ("TRAIN_LONG_TERM_MEM_GAP", int),
        }
        values = {field: kind(cfg[key]) for field, (key, kind) in names.items() if key in cfg}
        return cls(**values)

    def base_lr(self, step: int) -> float:
        """The non-encoder learning rate at ``step`` (upstream ``now_lr``)."""
        total, warm_up = self.total_steps, self.warm_up_ratio * self.total_steps
        if self.restarts > 1:
            total = math.ceil(total / self.restarts)
            step, warm_up = step % total, warm_up / self.restarts
        if step < warm_up:
            return self.lr_min + (self.lr - self.lr_min) * step / warm_up
        progress = (step - warm_up) / (total - warm_up + 1)
        if self.cosine_decay:
            factor = (math.cos(math.pi * progress) + 1.0) * 0.5
        else:
            factor = (1.0 - progress) ** self.lr_power
        return self.lr_min + (self.lr - self.lr_min) * factor

    def encoder_lr(self, step: int) -> float:
        """The learning rate of parameters whose name contains ``encoder.``."""
        if self.encoder_lr_ratio == 1.0:
            return self.base_lr(step)
        return (self.base_lr(step) - self.lr_min) * self.encoder_lr_ratio + self.lr_min

    def aux_weight(self, step: int) -> float:
        """Weight of the reference frame's loss: linear from aux_loss_weight to 0."""
        length = self.total_steps * self.aux_loss_ratio + LENGTH_EPS
        return self.aux_loss_weight * max(length - step, 0.0) / length

    def topk_fraction(self, step: int) -> float:
        """Fraction of pixels the cross-entropy keeps: from 1 to top_k_percent_pixels."""
        length = self.hard_mining_ratio * self.total_steps + LENGTH_EPS
        ratio = min(1.0, step / length)
        return ratio * self.top_k_percent_pixels + (1.0 - ratio)

    def topk_count(self, step: int, num_pixels: int) -> int:
        """Pixels kept by the cross-entropy of a ``num_pixels`` label (truncated)."""
        return int(self.topk_fraction(step) * num_pixels)

    def sequential(self, step: int) -> bool:
        """Whether memory writes use the model's own predictions (ids detached)."""
        return step >= int(self.seq_training_start_ratio * self.total_steps)

    def frozen_names(self, step: int) -> tuple[str, ...]:
        """Name substrings whose LR and weight decay are 0 at ``step``."""
        return self.seq_training_freeze if self.sequential(step) else ()
