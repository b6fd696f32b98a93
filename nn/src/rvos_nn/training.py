"""The contract between the training engine (rvos_train) and the model packages.

A model that can be trained declares ``ModelEntry.training = TrainingHooks(...)``: how a batch of
augmented clips runs through the model in training mode (its outputs in the layout its criterion
reads, upstream's layout), which criterion family scores them, and which parameter group each
parameter belongs to. The engine owns everything else: data, optimizer, schedule, precision,
distribution, checkpoints and logs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor, nn

from rvos_nn.text import Tokenizer

ParamGroup = Literal["backbone", "text_encoder", "rest"]


@dataclass(frozen=True)
class Clip:
    """One augmented training sample: a clip of one video (or a one-frame pseudo-video) and one
    expression.

    Attributes:
        frames: float32 [T, 3, H, W], normalised with the ImageNet mean and std.
        masks: bool [T, H, W], the referred object (MeViS: the union of the expression's objects).
        boxes: float32 [T, 4], normalised (cx, cy, w, h) of ``masks``; all zeros where absent.
        valid: int32 [T], 1 where the object is visible.
        caption: the expression (after augmentation: a flipped clip says "right" for "left").
        frame_ids: int64 [T], each frame's index in its video.
        orig_size: (H0, W0) of the video's frames before augmentation.
        source: where it came from, for messages ("refytvos/<video>/<exp_id>").
    """

    frames: Tensor
    masks: Tensor
    boxes: Tensor
    valid: Tensor
    caption: str
    frame_ids: Tensor
    orig_size: tuple[int, int]
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) after augmentation."""
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])


TrainForward = Callable[[nn.Module, Tokenizer, Sequence[Clip]], dict[str, Any]]


@dataclass(frozen=True)
class TrainingHooks:
    """What a trainable model declares in its ModelEntry.

    Attributes:
        criterion: the loss family in rvos_train.losses that scores ``forward``'s outputs
            ("referformer" for ReferFormer and MUTR, "soc").
        forward: (model in train mode, its tokenizer, B clips) -> the model's training outputs in
            the layout of that criterion (the fixtures' ``outputs``: last layer + ``aux_outputs``).
        param_group: parameter name -> "backbone", "text_encoder" or "rest" (the learning-rate
            groups upstream builds).
    """

    criterion: str
    forward: TrainForward
    param_group: Callable[[str], ParamGroup]
