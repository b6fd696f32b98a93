"""Training of the AOT / DeAOT propagators, one step at a time (see docs/training-propagators.md).

Paper and upstream per module: ``schedule`` (LR, aux weight, top-k, sequential switch), ``optim``
(frozen encoder parts, AdamW groups, per-step LRs), ``losses`` (bootstrapped cross-entropy, soft
Jaccard), ``forward`` (the step's forward over a clip batch). Reproduces one training iteration of
yoxu515/aot-benchmark @ 601c138; the engine integration and the data pipeline are not here yet.
"""

from rvos_vos.training.forward import (
    FrameOutput,
    MemoryWrite,
    StepOutput,
    StepSettings,
    TrainingForward,
    random_id_shuffle,
)
from rvos_vos.training.losses import FrameLosses, frame_losses
from rvos_vos.training.optim import (
    build_optimizer,
    freeze_encoder_stages,
    parameter_groups,
    set_learning_rates,
)
from rvos_vos.training.schedule import TrainSchedule

__all__ = [
    "FrameLosses",
    "FrameOutput",
    "MemoryWrite",
    "StepOutput",
    "StepSettings",
    "TrainSchedule",
    "TrainingForward",
    "build_optimizer",
    "frame_losses",
    "freeze_encoder_stages",
    "parameter_groups",
    "random_id_shuffle",
    "set_learning_rates",
]
