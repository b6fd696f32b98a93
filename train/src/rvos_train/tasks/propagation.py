"""Training of the AOT / DeAOT propagators on the engine (rvos_train.engine).

A micro-batch is B sequences (rvos_train.data.vos.VOSClip: the reference frame, then the frames
propagated from it, with multi-object label maps); the step's forward is
``rvos_vos.training.TrainingForward`` (identities shuffled per sample from the model's random
state, the step's aux weight, top-k fraction and sequential switch from the schedule), its loss
``aux_weight x reference-frame loss + propagated frames' loss``. Optimizer: one AdamW group per
parameter with upstream's weight-decay exemptions, the encoder's lower rate and the poly schedule
with warm-up (rvos_vos.training.optim / schedule), per step. Encoder stages frozen as upstream's
``TRAIN_ENCODER_FREEZE_AT``; drop-path and channel-dropout rates as upstream.

Configuration: ``[optim]`` gives the length (``steps``: TRAIN_TOTAL_STEPS, or epochs), the batch
(``batch_size`` x ``reference_gpus`` = TRAIN_BATCH_SIZE), ``lr`` (TRAIN_LR), ``weight_decay`` and
``clip_max_norm`` (TRAIN_CLIP_GRAD_NORM); ``[schedule]`` the other fields of
``rvos_vos.training.TrainSchedule`` plus ``encoder_freeze_at``, ``swin_drop_path`` and
``lstt_drop_path`` (rvos_vos.training.DropoutRates) and ``ema_ratio`` (TRAIN_EMA_RATIO, 0.1: the
moving average of the weights that is validated and written as the final model, rvos_train.ema).

Starting weights (``init.source``): "pretrained", the ImageNet Swin encoder under PRETRAINED
(upstream's PRE stage); "checkpoint", a propagator checkpoint (INIT: the PRE stage's result for the
video stage, or the competition weights); "random". Parts no file covers get upstream's
initialisation. Checkpoints are upstream's ``{"state_dict": ...}``, which ``rvos_vos.propagate``
loads strictly. Validation: J&F (DAVIS-2017 semi-supervised, rvos_eval) of propagation from the
first frame's ground truth on a DAVIS-layout held-out split (rvos_vos.first_frame).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_core.palette import write_label_png
from rvos_eval import davis
from rvos_train.config import TrainConfig
from rvos_train.data import concat
from rvos_train.data.vos import VOSClip, open_vos_set
from rvos_train.task import EngineSettings, SampleSet, Task
from rvos_train.validation import run_module
from rvos_vos.first_frame import propagate_from_first
from rvos_vos.network import PropagationNet
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.training import (
    DropoutRates,
    StepOutput,
    StepSettings,
    TrainingForward,
    TrainSchedule,
    build_optimizer,
    freeze_encoder_stages,
    random_id_shuffle,
    set_dropout_rates,
    set_learning_rates,
)
from rvos_vos.training.init import IMAGENET_SWIN_FILE, init_like_upstream, load_imagenet_encoder
from rvos_vos.views import read_frame

FROM_OPTIM = {"lr", "weight_decay", "clip_grad_norm", "total_steps"}
"""TrainSchedule fields set by [optim] and the run's length, not by [schedule]."""
DROPOUT_KEYS = {
    "encoder_freeze_at": "freeze_at",
    "swin_drop_path": "swin_drop_path",
    "lstt_drop_path": "lstt_drop_path",
}
"""[schedule] keys of rvos_vos.training.DropoutRates (TRAIN_ENCODER_FREEZE_AT, the encoder's
drop_path_rate, TRAIN_LSTT_DROPPATH)."""
AVERAGE_KEY = "ema_ratio"
"""[schedule] key of TRAIN_EMA_RATIO (0: no weight average)."""
UPSTREAM_EMA_RATIO = 0.1
VALIDATION_DATASET = "davis"


class PropagationStep(nn.Module):
    """The training forward of one micro-batch as a module (what DDP wraps)."""

    def __init__(self, net: PropagationNet, schedule: TrainSchedule) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule

    def forward(self, samples: Sequence[VOSClip], step: int) -> StepOutput:
        """B samples of T frames -> the step's output (losses averaged over the samples)."""
        frames = torch.stack([s.frames for s in samples], dim=1)
        labels = torch.stack([s.labels for s in samples], dim=1).long()
        shuffle = random_id_shuffle(len(samples), self.net.config.num_ids).to(frames.device)
        settings = StepSettings.at(self.schedule, step)
        forward = TrainingForward(self.net, [s.obj_num for s in samples], shuffle, settings)
        return forward(frames, labels)


class PropagationTask(Task):
    """AOT or DeAOT (see the module docstring)."""

    checkpoint_container = "state_dict"

    def __init__(self, config: TrainConfig, settings: EngineSettings) -> None:
        super().__init__(config, settings)
        self.propagator: Propagator = load_propagator(config.model)
        self.net_config = self.propagator.config(config.variant)
        self.rates, self.average_ratio, self.schedule_values = _split_schedule(config)
        self.schedule: TrainSchedule | None = None
        if config.data.recipe != "aot":
            raise ConfigError(f"{config.model} trains with data.recipe = 'aot'")
        v = config.validate
        if v.every_epochs and v.dataset != VALIDATION_DATASET:
            raise ConfigError(
                f"{config.model} validates on a DAVIS-layout split: validate.dataset must be "
                f"{VALIDATION_DATASET!r}, not {v.dataset!r}"
            )

    def open_data(self) -> SampleSet:
        d = self.config.data
        sets = [
            open_vos_set(name, self.settings.data, num_frames=d.num_frames, **d.options)
            for name in d.sets
        ]
        return sets[0] if len(sets) == 1 else concat(sets)

    def build_model(self, verbose: bool) -> nn.Module:
        net = self.propagator.build(self.net_config)
        if self.config.init.source != "checkpoint":
            init_like_upstream(net)
        self._load_start(net, verbose)
        freeze_encoder_stages(net, self.rates.freeze_at)
        set_dropout_rates(net, self.rates)
        return net.train()

    def _load_start(self, net: PropagationNet, verbose: bool) -> None:
        source, settings = self.config.init.source, self.settings
        if source == "checkpoint":
            if settings.init is None:
                raise ConfigError("init.source = checkpoint needs INIT=<checkpoint file> (--init)")
            self.propagator.load(net, settings.init)
        elif source == "pretrained":
            report = load_imagenet_encoder(net, settings.pretrained / IMAGENET_SWIN_FILE)
            if verbose:
                print(report.format(), file=sys.stderr)

    def plan(self, total_steps: int) -> None:
        o = self.config.optim
        try:
            self.schedule = TrainSchedule(
                total_steps=total_steps,
                lr=o.lr,
                weight_decay=o.weight_decay,
                clip_grad_norm=o.clip_max_norm,
                **self.schedule_values,
            )
        except TypeError as exc:
            raise ConfigError(f"[schedule] of {self.config.name}: {exc}") from None

    def step_module(self, model: nn.Module) -> nn.Module:
        return PropagationStep(model, self.schedule)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(model, self.schedule)

    def set_learning_rates(
        self, optimizer: torch.optim.Optimizer, step: int, epoch: int
    ) -> dict[str, float]:
        set_learning_rates(optimizer, self.schedule, step)
        return {"lr": self.schedule.base_lr(step), "lr_encoder": self.schedule.encoder_lr(step)}

    @property
    def clip_max_norm(self) -> float:
        return self.schedule.clip_grad_norm

    def loss_terms(
        self, outputs: StepOutput, targets: Any, normaliser: float, step: int
    ) -> dict[str, Tensor]:
        aux_weight = self.schedule.aux_weight(step)
        return {"loss_aux": aux_weight * outputs.aux_loss, "loss_pred": outputs.pred_loss}

    def load_weights(self, model: nn.Module, path: Path) -> None:
        self.propagator.load(model, path)

    def validate(self, checkpoint: Path, out: Path) -> dict[str, float]:
        v = self.config.validate
        net = self.propagator.build(self.net_config)
        self.propagator.load(net, checkpoint)
        predictions = out / "predictions"
        predict_split(propagation(net, self.propagator), self.settings.data, v.split, predictions)
        return _davis_scores(predictions, self.settings.data, v.split, out / "eval")

    def recorded(self) -> dict[str, Any]:
        return {"propagator": dataclasses.asdict(self.net_config)}


def _split_schedule(config: TrainConfig) -> tuple[DropoutRates, float, dict[str, Any]]:
    """[schedule] -> (the dropout rates and frozen stages, the EMA ratio, TrainSchedule's other
    fields)."""
    values = dict(config.schedule)
    clash = sorted(FROM_OPTIM & set(values))
    if clash:
        raise ConfigError(
            f"[schedule] of {config.name}: {', '.join(clash)} come from [optim] and the run's "
            "length (optim.lr, weight_decay, clip_max_norm, steps)"
        )
    rates = {field: values.pop(key) for key, field in DROPOUT_KEYS.items() if key in values}
    average = float(values.pop(AVERAGE_KEY, UPSTREAM_EMA_RATIO))
    known = {f.name for f in dataclasses.fields(TrainSchedule)} - FROM_OPTIM
    unknown = sorted(set(values) - known)
    if unknown:
        allowed = ", ".join(sorted(known | set(DROPOUT_KEYS) | {AVERAGE_KEY}))
        raise ConfigError(f"[schedule] of {config.name}: unknown {unknown}; known: {allowed}")
    for key in ("seq_training_freeze", "weight_decay_exemptions"):
        if key in values:
            values[key] = tuple(values[key])
    if average < 0:
        raise ConfigError(f"[schedule] of {config.name}: {AVERAGE_KEY} must be >= 0")
    return DropoutRates(**rates), average, values


Predict = Callable[[list[np.ndarray], np.ndarray], np.ndarray]
"""(frames, the first frame's labels uint8 [H, W]) -> labels uint8 [T, H, W]."""


def propagation(net: PropagationNet, propagator: Propagator) -> Predict:
    """The network's propagation from the first frame (rvos_vos.first_frame)."""
    return lambda images, first: propagate_from_first(net, propagator, images, first)


def copy_first_frame(images: list[np.ndarray], first: np.ndarray) -> np.ndarray:
    """The baseline that propagates nothing: the first frame's labels in every frame."""
    return np.repeat(first[None], len(images), axis=0)


def predict_split(predict: Predict, data: Path, split: str, out: Path) -> None:
    """Every sequence of the DAVIS split predicted from its first annotation, written as indexed
    PNGs ``out/<sequence>/<frame>.png`` (the layout rvos_eval reads)."""
    root = davis.find_root(data)
    for name in davis.sequence_names(root, split):
        truth = davis.read_ground_truth(davis.annotation_root(root, "semi-supervised") / name)
        images = [
            read_frame(root / "JPEGImages" / "480p" / name / f"{f}.jpg") for f in truth.frames
        ]
        _write_labels(out / name, truth.frames, predict(images, truth.labels[0]))


def _write_labels(folder: Path, frames: Sequence[str], labels: np.ndarray) -> None:
    """uint8 [T, H, W] as indexed PNGs (the DAVIS palette)."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame, label in zip(frames, labels, strict=True):
        write_label_png(folder / f"{frame}.png", label)


def _davis_scores(predictions: Path, data: Path, split: str, out: Path) -> dict[str, float]:
    """J&F of the predictions by ``python -m rvos_eval`` (DAVIS semi-supervised)."""
    options = {"--dataset": "davis", "--task": "semi-supervised", "--data": str(data)}
    options |= {"--split": split, "--out": str(out), "--workers": "1"}
    summary = run_module(["rvos_eval", str(predictions)], options, out / "summary.json")
    table = summary["global"]
    return {"J": table["J-Mean"], "F": table["F-Mean"], "J&F": table["J&F-Mean"]}
