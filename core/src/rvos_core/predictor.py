"""The contract between the inference driver (rvos_core.infer) and the model packages.

A model package registers a factory under the entry-point group ``rvos.models`` (in its
pyproject.toml), e.g. ``referformer = "rvos_referformer.predictor:create"``. The driver never
imports a model package by name: dependencies point from models to core only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from PIL import Image

Precision = Literal["fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class ExpressionPrediction:
    """A model's answer for one expression of one video.

    Attributes:
        probs: float32 [T, H, W] in [0, 1] at the original frame size; foreground is probs > 0.5
            (for logit models: float32 sigmoid of the upsampled logits, as upstream thresholds them).
        scores: float [T], the per-frame score of the chosen query (upstream "class_info").
    """

    probs: np.ndarray
    scores: np.ndarray


class Predictor(Protocol):
    """Frames of one video + its expressions -> one ExpressionPrediction per expression.

    The visual part that does not depend on the text is computed once per call and reused for
    every expression (where the model allows it).
    """

    value_domain: Literal["logit", "probability"]

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> list[ExpressionPrediction]: ...


class PredictorFactory(Protocol):
    """What the ``rvos.models`` entry point resolves to."""

    def __call__(
        self,
        *,
        checkpoint: Path | None,
        variant: str,
        device: torch.device,
        precision: Precision,
        pretrained: Path,
        options: Mapping[str, str],
    ) -> Predictor: ...
