"""Training of the referring models (SOC, MUTR, ReferFormer, UNINEXT) through their
``ModelEntry.training`` hooks (rvos_nn.training.TrainingHooks).

A micro-batch is B augmented clips (rvos_nn.training.Clip): the model's training forward gives
its outputs in upstream's layout, the model's criterion (rvos_train.losses) matches and scores
them, weighted by the criterion's weight dict. Learning-rate groups and the multi-step schedule:
rvos_train.optim. Validation: the real inference driver and evaluation (rvos_train.validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.predictor import ModelEntry
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip, TrainingHooks
from rvos_train.config import TrainConfig
from rvos_train.data import concat, open_training_set
from rvos_train.initialise import initialise, training_tokenizer
from rvos_train.losses import criterion, settings_for
from rvos_train.optim import build_optimizer, freeze_text_encoder, set_learning_rates
from rvos_train.task import EngineSettings, SampleSet, Task
from rvos_train.validation import ValidationJob, validate


class TrainStep(nn.Module):
    """The model's training forward as a module (what DDP wraps): clips -> outputs."""

    def __init__(self, model: nn.Module, hooks: TrainingHooks, tokenizer: Tokenizer):
        super().__init__()
        self.model = model
        self.hooks = hooks
        self.tokenizer = tokenizer

    def forward(self, clips: Sequence[Clip], step: int) -> dict[str, Any]:
        del step  # the referring models' forward does not depend on the step
        return self.hooks.forward(self.model, self.tokenizer, clips)


class ReferringTask(Task):
    """A referring model of the registry with ``ModelEntry.training`` (see the module docstring)."""

    def __init__(self, config: TrainConfig, settings: EngineSettings, entry: ModelEntry) -> None:
        super().__init__(config, settings)
        if entry.training is None:
            raise ConfigError(
                f"model {config.model} cannot be trained (its entry declares no training)"
            )
        self.entry, self.hooks = entry, entry.training
        self.checkpoint_container = self.hooks.checkpoint_container
        self.tokenizer: Tokenizer | None = None
        self.criterion = None

    def open_data(self) -> SampleSet:
        d = self.config.data
        sets = [
            open_training_set(
                name, self.settings.data, recipe=d.recipe, num_frames=d.num_frames, **d.options
            )
            for name in d.sets
        ]
        return sets[0] if len(sets) == 1 else concat(sets)

    def build_model(self, verbose: bool) -> nn.Module:
        """The model (text encoder frozen if asked), its tokenizer and criterion."""
        model = self.entry.build(self.config.variant)
        source, settings = self.config.init.source, self.settings
        initialise(model, source, self.entry, settings.pretrained, settings.init, verbose)
        if self.config.optim.freeze_text_encoder:
            freeze_text_encoder(model, self.hooks.param_group)
        self.tokenizer = training_tokenizer(model, self.hooks, settings.pretrained)
        family = self.hooks.criterion
        values = settings_for(family, self.config.loss, self.hooks.decoder_layers(model))
        self.criterion = criterion(family, values)
        return model.train()

    def step_module(self, model: nn.Module) -> nn.Module:
        return TrainStep(model, self.hooks, self.tokenizer)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        hooks = self.hooks
        return build_optimizer(model, hooks.param_group, self.config.optim, hooks.no_weight_decay)

    def set_learning_rates(
        self, optimizer: torch.optim.Optimizer, step: int, epoch: int
    ) -> dict[str, float]:
        set_learning_rates(optimizer, self.config.optim, epoch, step)
        return {f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}

    @property
    def clip_max_norm(self) -> float:
        return self.config.optim.clip_max_norm

    def targets(self, samples: Sequence[Clip]) -> Any:
        return self.criterion.targets(samples)

    def count(self, targets: Any) -> int:
        return self.criterion.count(targets)

    def loss_terms(
        self, outputs: Any, targets: Any, normaliser: float, step: int
    ) -> dict[str, Tensor]:
        losses, _ = self.criterion(outputs, targets, normaliser=normaliser)
        missing = sorted(set(losses) - set(self.criterion.weight_dict))
        if missing:
            raise ConfigError(f"no weight for the losses {missing}")
        return {name: self.criterion.weight_dict[name] * value for name, value in losses.items()}

    def load_weights(self, model: nn.Module, path: Path) -> None:
        load_checkpoint(model, path, self.entry.checkpoint_rules)

    def validate(self, checkpoint: Path, out: Path) -> dict[str, float]:
        v, s = self.config.validate, self.settings
        return validate(
            ValidationJob(
                model=self.config.model,
                variant=self.config.variant,
                checkpoint=checkpoint,
                pretrained=s.pretrained,
                data=s.data,
                dataset=v.dataset,
                split=v.split,
                device=s.device,
                out=out,
            )
        )
