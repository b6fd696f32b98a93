"""Where a training run's weights and tokenizer come from: the PRETRAINED folder (the model's
``TrainingHooks.pretrained_init``: upstream's Kinetics Video-Swin checkpoint and roberta-base through
rvos_nn.pretrained_init, UNINEXT's backbone file and bert-base-uncased; strictly, with its report), a checkpoint (fine-tuning: the model's own strict loader, so a checkpoint of another
model is refused with its report), or nothing (random, the tiny models). The parts no file covers
get upstream's initialisation first (``TrainingHooks.upstream_init``)."""

from __future__ import annotations

import sys
from pathlib import Path

from torch import nn

from rvos_core.errors import ConfigError
from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.predictor import ModelEntry
from rvos_nn.text import Tokenizer, load_tokenizer
from rvos_nn.training import TrainingHooks


def initialise(
    model: nn.Module,
    source: str,
    entry: ModelEntry,
    pretrained: Path,
    init: Path | None,
    verbose: bool,
) -> None:
    """Load the starting weights of ``source`` ("pretrained", "checkpoint", "random")."""
    if source != "checkpoint":
        entry.training.upstream_init(model)
    if source == "checkpoint":
        if init is None:
            raise ConfigError("init.source = checkpoint needs INIT=<checkpoint file> (--init)")
        report = load_checkpoint(model, init, entry.checkpoint_rules)
    elif source == "pretrained":
        report = entry.training.pretrained_init(model, pretrained)
    else:
        return
    if verbose:
        print(report.format(), file=sys.stderr)


def training_tokenizer(model: nn.Module, hooks: TrainingHooks, pretrained: Path) -> Tokenizer:
    """The model's tokenizer from PRETRAINED (as its predictor loads it)."""
    return load_tokenizer(hooks.tokenizer, pretrained, model.config.text.max_tokens)
