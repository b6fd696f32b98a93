"""SAM 2.1, the SAM 3 tracker and EdgeTAM as propagators: the library's video models, three
small configurations of one skeleton (``rvos_vos.tracking`` runs them; they are registered under
``rvos.propagators`` beside AOT and DeAOT; ``python -m rvos_vos.propagate NAME`` hands them to
``rvos_vos.propagate_trackers``).

Each family is a transformers video model (``Sam2VideoModel``, ``Sam3TrackerVideoModel``,
``EdgeTamVideoModel``, transformers 5.23) with its inference session class, its weights folder
(``rvos_nn.hf_video.HubWeights``) and its pixel normalisation. ``mask_input`` does the step of the
library's processor for a key mask (resized like a frame, thresholded at 0.5, as
``process_new_mask_for_video_frame``); ``mask_logits`` that of ``post_process_masks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor
from transformers import (
    EdgeTamVideoConfig,
    EdgeTamVideoInferenceSession,
    EdgeTamVideoModel,
    PretrainedConfig,
    PreTrainedModel,
    Sam2VideoConfig,
    Sam2VideoInferenceSession,
    Sam2VideoModel,
    Sam3TrackerVideoConfig,
    Sam3TrackerVideoInferenceSession,
    Sam3TrackerVideoModel,
)

from rvos_core.errors import ConfigError
from rvos_nn.hf_video import (
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    HubWeights,
    edgetam_config,
    frame_pixels,
    sam2_config,
    sam3_tracker_config,
)


@dataclass(frozen=True)
class TrackerFamily:
    """One library video tracker used as a propagator.

    Attributes:
        name: the registered name ('sam2', 'sam3_tracker', 'edgetam').
        weights: its model class and weights folder.
        session_class: the library's inference session.
        mean / std: the pixel normalisation of the family's processor.
        variants: named random configurations (``tiny`` for tests, ``small`` for benchmarks,
            ``full`` the library's default size).
    """

    name: str
    weights: HubWeights
    session_class: type
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    variants: Mapping[str, Callable[[], PretrainedConfig]]

    def random_model(self, variant: str) -> PreTrainedModel:
        """A model of a named configuration with random weights (tests, benchmarks)."""
        if variant not in self.variants:
            raise ConfigError(
                f"{self.name}: unknown variant {variant!r} (one of {', '.join(self.variants)})"
            )
        return self.weights.model_class(self.variants[variant]()).eval()

    def pixels(self, image: Tensor, side: int) -> Tensor:
        """float32 [H, W, 3] RGB 0..255 -> the model's input float32 [3, side, side]."""
        return frame_pixels(image, side, self.mean, self.std)


def mask_input(mask: Tensor, side: int) -> Tensor:
    """A key mask bool [H, W] -> the session's mask input float32 [1, 1, side, side] (0 / 1)."""
    x = mask.float()[None, None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return (x >= 0.5).float()


def mask_logits(low_res: Tensor, side: int, size: tuple[int, int]) -> Tensor:
    """The model's mask logits [N, 1, h, w] -> [N, H, W] at the frame size, through the model's
    input size (as the library's ``post_process_masks``)."""
    x = F.interpolate(low_res.float(), size=(side, side), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0]


SAM2 = TrackerFamily(
    name="sam2",
    weights=HubWeights(
        title="SAM 2.1",
        model_class=Sam2VideoModel,
        model_types=("sam2_video", "sam2"),
        folder="sam2.1-hiera-large",
        hub="facebook/sam2.1-hiera-large",
    ),
    session_class=Sam2VideoInferenceSession,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    variants={
        "tiny": lambda: sam2_config(64, (1, 1, 2, 1), 128),
        "small": lambda: sam2_config(256, (1, 2, 4, 1), 128),
        "full": Sam2VideoConfig,
    },
)
SAM3_TRACKER = TrackerFamily(
    name="sam3_tracker",
    weights=HubWeights(
        title="the SAM 3 tracker",
        model_class=Sam3TrackerVideoModel,
        model_types=("sam3_video", "sam3_tracker_video"),
        folder="sam3",
        hub="facebook/sam3",
    ),
    session_class=Sam3TrackerVideoInferenceSession,
    mean=HALF,
    std=HALF,
    variants={
        "tiny": lambda: sam3_tracker_config(56, 2, 128),
        "small": lambda: sam3_tracker_config(252, 4, 128),
        "full": Sam3TrackerVideoConfig,
    },
)
EDGETAM = TrackerFamily(
    name="edgetam",
    weights=HubWeights(
        title="EdgeTAM",
        model_class=EdgeTamVideoModel,
        model_types=("edgetam_video", "edgetam"),
        folder="EdgeTAM-hf",
        hub="yonigozlan/EdgeTAM-hf",
    ),
    session_class=EdgeTamVideoInferenceSession,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    variants={
        "tiny": lambda: edgetam_config(64, (1, 1, 2, 1), 128),
        "small": lambda: edgetam_config(256, (1, 2, 4, 1), 128),
        "full": EdgeTamVideoConfig,
    },
)
