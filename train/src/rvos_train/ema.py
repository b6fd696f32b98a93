"""An exponential moving average of the trainable weights, as aot-benchmark keeps one (its
``ema_ckpt`` is what the next stage starts from and what is evaluated).

Upstream: yoxu515/aot-benchmark @ 601c138 ``utils/ema.py`` (``ExponentialMovingAverage`` with
``use_num_updates``) and ``networks/managers/trainer.py`` (decay ``1 - 1 / (total_steps x
TRAIN_EMA_RATIO)``, updated after every optimizer step; buffers are not averaged because
``MODEL_FREEZE_BN`` is on in every stock config). Update n (1-based) uses the decay
``min(decay, (1 + n) / (10 + n))``: shadow -= (1 - decay) x (shadow - weight).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rvos_core.errors import ConfigError


class WeightAverage:
    """The average of ``model``'s trainable parameters (the ones with ``requires_grad``, in
    ``named_parameters`` order)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay, self.updates = decay, 0
        self.names = [name for name, param in model.named_parameters() if param.requires_grad]
        params = dict(model.named_parameters())
        self.shadow = [params[name].detach().clone() for name in self.names]

    @classmethod
    def for_run(cls, model: nn.Module, total_steps: int, ratio: float) -> WeightAverage:
        """Upstream's decay for a run of ``total_steps``: 1 - 1 / (total_steps x ratio)."""
        if total_steps * ratio < 1:
            raise ConfigError(
                f"the weight average needs ema_ratio x steps >= 1 (decay 1 - 1 / (steps x ratio)); "
                f"got {ratio} x {total_steps}: raise schedule.ema_ratio or set it to 0 (no average)"
            )
        return cls(model, 1.0 - 1.0 / (total_steps * ratio))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """After an optimizer step."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        params = dict(model.named_parameters())
        for shadow, name in zip(self.shadow, self.names, strict=True):
            shadow.sub_((1.0 - decay) * (shadow - params[name]))

    def state_dict_of(self, model: nn.Module) -> dict[str, Tensor]:
        """``model.state_dict()`` with the averaged values in place of the trainable weights."""
        state = model.state_dict()
        for name, shadow in zip(self.names, self.shadow, strict=True):
            state[name] = shadow.clone()
        return state

    def state(self) -> dict[str, Any]:
        """What resuming needs (trainer.pt)."""
        return {"updates": self.updates, "shadow": self.shadow}

    def load(self, state: dict[str, Any]) -> None:
        if len(state["shadow"]) != len(self.shadow):
            raise ValueError("the checkpoint's EMA holds another set of parameters")
        self.updates = int(state["updates"])
        for mine, stored in zip(self.shadow, state["shadow"], strict=True):
            mine.copy_(stored)
