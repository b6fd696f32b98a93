"""What the engine trains: a model family's side of training (``Task``).

The engine (rvos_train.engine) owns what every run shares: sampling and its random state, gradient
accumulation, DDP, AMP, clipping, the non-finite check, checkpoints, resume, metrics and the
progress bar. A task owns what differs between model families:

* ``ReferringTask`` (rvos_train.tasks.referring): the referring models (SOC, MUTR, ReferFormer,
  UNINEXT) through their ``ModelEntry.training`` hooks: augmented clips + captions, a set
  criterion, learning-rate groups with a multi-step schedule, J&F of the inference driver.
* ``PropagationTask`` (rvos_train.tasks.propagation): the AOT / DeAOT propagators: sequences of
  multi-object label maps, the propagation forward with its step-dependent loss, the poly schedule
  with warm-up, J&F of propagation from the first frame.

A task sees one process's micro-batch at a time (``samples``: what its data set's ``clip(index,
rng)`` returns) and gives the engine weighted loss terms whose sum is what ``backward()`` runs on.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from rvos_train.config import TrainConfig


@dataclass(frozen=True)
class EngineSettings:
    """Where and how one run trains (not part of the configuration: changing them does not change
    what is learnt, except precision, which the run records).

    Attributes:
        run: the run folder. data / pretrained: paths.env's DATA and PRETRAINED. init: the
        checkpoint of ``init.source = "checkpoint"``. device: cpu or cuda. precision: fp32, bf16,
        fp16 (cuda). workers: data-loading processes per training process. checkpoint_every:
        steps between checkpoints (0: at epoch ends only). log_every: steps between metric lines.
        stop_after: end this invocation after that many steps in total (the run stays resumable).
    """

    run: Path
    data: Path
    pretrained: Path
    init: Path | None = None
    device: str = "cpu"
    precision: str = "fp32"
    workers: int = 2
    checkpoint_every: int = 0
    log_every: int = 10
    stop_after: int | None = None


class SampleSet(Protocol):
    """A training set: ``clip(index, rng)`` draws sample ``index`` with all randomness from
    ``rng`` (same state, same sample)."""

    def __len__(self) -> int: ...

    def clip(self, index: int, rng: np.random.Generator) -> Any: ...


class Task(ABC):
    """A model family's side of training (see the module docstring).

    Args:
        config: the run's configuration; settings: where it runs.
    """

    checkpoint_container: str
    """The key upstream's training saves the weights under (the engine's checkpoints use it)."""
    average_ratio: float = 0.0
    """> 0: keep a moving average of the weights with decay 1 - 1 / (total steps x ratio)
    (rvos_train.ema); it is validated and is the run's final model.pth."""

    def __init__(self, config: TrainConfig, settings: EngineSettings) -> None:
        self.config, self.settings = config, settings

    @abstractmethod
    def open_data(self) -> SampleSet:
        """The training set of ``config.data`` under ``settings.data``."""

    @abstractmethod
    def build_model(self, verbose: bool) -> nn.Module:
        """The model with its starting weights (random parts drawn from the torch generator the
        engine seeded), in train mode; ``verbose``: print the initialisation report."""

    def plan(self, total_steps: int) -> None:  # noqa: B027 (optional hook)
        """Called once the run's length is known, before the optimizer is built."""

    @abstractmethod
    def step_module(self, model: nn.Module) -> nn.Module:
        """What DDP wraps: ``forward(samples, step)`` -> the outputs ``loss_terms`` reads."""

    @abstractmethod
    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over the trainable parameters; every group has a ``name``."""

    @abstractmethod
    def set_learning_rates(
        self, optimizer: torch.optim.Optimizer, step: int, epoch: int
    ) -> dict[str, float]:
        """Every group's rate at ``step`` (in ``epoch``); returns the rates to log by name."""

    @property
    @abstractmethod
    def clip_max_norm(self) -> float:
        """Gradient clipping threshold (0: none)."""

    def targets(self, samples: Sequence[Any]) -> Any:
        """What ``loss_terms`` compares the outputs with (built once per micro-batch)."""
        return samples

    def count(self, targets: Any) -> int:
        """The targets' share of the loss normaliser (upstream's num_boxes)."""
        return len(targets)

    @abstractmethod
    def loss_terms(
        self, outputs: Any, targets: Any, normaliser: float, step: int
    ) -> dict[str, Tensor]:
        """The weighted loss terms of one micro-batch (their sum is its loss); ``normaliser``:
        the global batch's count per micro-batch (see the engine)."""

    @abstractmethod
    def load_weights(self, model: nn.Module, path: Path) -> None:
        """Load a checkpoint of this run strictly (resume)."""

    @abstractmethod
    def validate(self, checkpoint: Path, out: Path) -> dict[str, float]:
        """J&F of ``checkpoint`` on the held-out split of ``config.validate``, written under
        ``out``; returns {"J", "F", "J&F"}."""

    def recorded(self) -> dict[str, Any]:
        """Extra values the run folder records (and refuses to change on resume)."""
        return {}


def to_device(sample: Any, device: torch.device) -> Any:
    """A sample dataclass with its tensor fields on ``device`` (the same object on the CPU)."""
    if device.type == "cpu":
        return sample
    moved = {
        f.name: value.to(device, non_blocking=True)
        for f in dataclasses.fields(sample)
        if isinstance(value := getattr(sample, f.name), Tensor)
    }
    return dataclasses.replace(sample, **moved)
