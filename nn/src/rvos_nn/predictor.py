"""The contract between the inference driver (rvos_nn.infer) and the model packages.

A model package registers one ``ModelEntry`` per model name under the entry-point group
``rvos.models`` in its pyproject.toml::

    [project.entry-points."rvos.models"]
    referformer = "rvos_referformer.entry:ENTRY"

The driver never imports a model package by name (dependencies point from models to core only).
For one run it does, in this order::

    model = entry.build(variant)                        # random init, CPU (or meta for reports)
    load_checkpoint(model, path, entry.checkpoint_rules)  # strict (rvos_nn.checkpoint)
    model.to(device).eval()
    predictor = entry.create_predictor(model, context)  # tokenizer etc. from context.pretrained
    for each video: predictor.predict(frames, texts)    # under torch.inference_mode + autocast

Everything else (datasets, sharding, resume, progress, precision, frames, run folder) is the
driver's. A package needs nothing else from core to be runnable, benchmarkable (bench/infer) and
reportable (``python -m rvos_nn.checkpoint_report``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from rvos_core import registry
from rvos_core.errors import ConfigError
from rvos_nn.checkpoint import CheckpointRules
from rvos_nn.options import NoOptions, parse_options
from rvos_nn.training import TrainingHooks

Precision = Literal["fp32", "bf16", "fp16"]
ValueDomain = Literal["logit", "probability"]


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
    """Frames of one video + its expressions -> one ExpressionPrediction per expression."""

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterable[ExpressionPrediction]:
        """Predict every text on ``frames`` (PIL RGB, all frames of the video, meta order).

        Yields (or returns) one prediction per text, in order. The visual part that does not
        depend on the text should be computed once per call and reused for every text (where
        the model allows it); a generator keeps only one expression's probabilities in memory.
        """
        ...


@dataclass(frozen=True)
class PredictorContext:
    """What a predictor is created with.

    Attributes:
        variant: the model variant the module was built as.
        device: where the model lives (the driver already moved it there).
        precision: "fp32", "bf16" or "fp16"; the driver runs predict() under autocast for the
            last two; a model keeps its fp32-only parts in fp32 itself.
        pretrained: the PRETRAINED folder of paths.env (roberta-base/, bert-base-uncased/).
        options: the run's --option key=value strings as the driver passes them; the entry's
            ``create_predictor`` hands the package its options dataclass instead.
    """

    variant: str
    device: torch.device
    precision: Precision
    pretrained: Path
    options: Any = field(default_factory=dict)


class FolderWeights(Protocol):
    """Weights kept as a folder in the Hugging Face layout (``rvos_nn.hf_video.HubWeights``): the
    model comes from the folder, not from a module and a checkpoint file."""

    def load(self, folder: Path) -> nn.Module:
        """The model of ``folder`` in eval mode, strictly loaded (InputError naming it if not)."""
        ...

    def record(self, folder: Path) -> dict[str, Any]:
        """What run.json records of the folder (its files with their sha256)."""
        ...


@dataclass(frozen=True)
class ModelEntry:
    """What a model package registers under ``rvos.models``: a declaration, no code of its own.

    Attributes:
        name: the entry-point name (what users type: ``python -m rvos_nn.infer NAME``).
        variants: the variants table, name -> the configuration ``module`` builds ("full": the
            released weights, "tiny": for tests and the demo).
        module: configuration -> nn.Module with random weights; must work under
            ``torch.device("meta")`` and keep upstream key names, so that checkpoints load
            through checkpoint_rules.
        predictor: (loaded model on its device, in eval mode; context with typed options) ->
            Predictor.
        value_domain: "logit" when probs are sigmoids of logits, "probability" otherwise.
        checkpoint_rules: how upstream checkpoints map onto the module.
        checkpoint_file: default file name under CHECKPOINTS (paths.env) when --checkpoint is omitted.
        default_variant: the variant used when none is given.
        options: the frozen dataclass of the model's options (rvos_nn.options); the driver's
            ``--option key=value`` strings are parsed into it once, here.
        training: how the model trains (rvos_nn.training), None for inference-only models.
        folder_weights: for a model whose checkpoint is a Hugging Face folder (SAM 3): the
            driver loads the model from it instead of ``module`` + ``checkpoint_rules``
            (``module`` still builds the random-weight model of a variant).
    """

    name: str
    variants: Mapping[str, object]
    module: Callable[[Any], nn.Module]
    predictor: Callable[[nn.Module, PredictorContext], Predictor]
    value_domain: ValueDomain
    checkpoint_rules: CheckpointRules = field(default_factory=CheckpointRules)
    checkpoint_file: str | None = None
    default_variant: str = "full"
    options: type = NoOptions
    training: TrainingHooks | None = None
    folder_weights: FolderWeights | None = None

    def check_variant(self, variant: str | None) -> str:
        """``variant`` (or the default) if this model has it; ConfigError otherwise."""
        chosen = variant or self.default_variant
        if chosen not in self.variants:
            raise ConfigError(
                f"model {self.name} has no variant {chosen!r}; variants: {', '.join(self.variants)}"
            )
        return chosen

    def build(self, variant: str | None = None) -> nn.Module:
        """The module of ``variant`` (default: the default variant) with random weights."""
        return self.module(self.variants[self.check_variant(variant)])

    def check_options(self, options: Mapping[str, str]) -> dict[str, str]:
        """The option strings, checked (parsed once and thrown away) and sorted by key: what a
        run records."""
        parse_options(self.options, options, f"model {self.name}")
        return dict(sorted(options.items()))

    def create_predictor(self, model: nn.Module, context: PredictorContext) -> Predictor:
        """The package's predictor, given the context with the options parsed into ``options``."""
        typed = parse_options(self.options, context.options, f"model {self.name}")
        return self.predictor(model, replace(context, options=typed))


def load_model_entry(name: str) -> ModelEntry:
    """The ModelEntry registered as ``name`` in the entry-point group ``rvos.models``."""
    return registry.load_named(registry.MODELS, name, "model", ModelEntry)
