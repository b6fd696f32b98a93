"""Training of the AOT / DeAOT propagators, one step at a time (see docs/training-propagators.md).

Paper and upstream per module: ``schedule`` (LR, aux weight, top-k, sequential switch), ``optim``
(frozen encoder parts, AdamW groups, per-step LRs), ``init`` (upstream's initial weights, the
ImageNet-22k Swin encoder), ``losses`` (bootstrapped cross-entropy, soft
Jaccard), ``stochastic`` (drop-path and channel-dropout rates), ``forward`` (the step's forward over a clip batch). Reproduces one training iteration of
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
from rvos_vos.training.init import (
    IMAGENET_SWIN_FILE,
    init_like_upstream,
    load_imagenet_encoder,
    write_fake_imagenet_swin,
)
from rvos_vos.training.losses import FrameLosses, frame_losses
from rvos_vos.training.optim import (
    build_optimizer,
    freeze_encoder_stages,
    parameter_groups,
    set_learning_rates,
)
from rvos_vos.training.schedule import TrainSchedule
from rvos_vos.training.stochastic import DropoutRates, set_dropout_rates

__all__ = [
    "IMAGENET_SWIN_FILE",
    "DropoutRates",
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
    "init_like_upstream",
    "load_imagenet_encoder",
    "parameter_groups",
    "random_id_shuffle",
    "set_dropout_rates",
    "set_learning_rates",
    "write_fake_imagenet_swin",
]
