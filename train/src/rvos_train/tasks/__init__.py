"""The model families the engine trains (rvos_train.task): ``task_for`` picks one by model name."""

from __future__ import annotations

from rvos_core import registry
from rvos_nn.predictor import load_model_entry
from rvos_train.config import TrainConfig
from rvos_train.task import EngineSettings, Task
from rvos_train.tasks.referring import ReferringTask


def task_for(config: TrainConfig, settings: EngineSettings) -> Task:
    """A registered propagator (AOT, DeAOT) trains as a PropagationTask, a model as a
    ReferringTask; an unknown name is a ConfigError listing both registries."""
    if config.model in registry.names(registry.PROPAGATORS):
        from rvos_train.tasks.propagation import PropagationTask  # rvos_vos: an optional part

        return PropagationTask(config, settings)
    return ReferringTask(config, settings, load_model_entry(config.model))
