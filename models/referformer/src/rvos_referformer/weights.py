"""Loading ReferFormer checkpoints (the competition ``referformer_ft`` and the public releases).

Saved upstream as ``{'model', 'optimizer', 'lr_scheduler', 'epoch', 'args'}`` (``main.py``); the
weights under ``'model'`` use this package's key names. Two things differ from a current state
dict and are handled by rvos_nn.checkpoint's default rules: the box heads are stored under both
``bbox_embed.*`` and ``transformer.decoder.bbox_embed.*`` (one module here: the copies must be
equal), and ``text_encoder.embeddings.position_ids`` (a buffer of transformers < 4.31) is dropped.
"""

from __future__ import annotations

from pathlib import Path

from rvos_nn.checkpoint import CheckpointReport, CheckpointRules
from rvos_nn.checkpoint import load_checkpoint as load_strict
from rvos_referformer.model import ReferFormer

CHECKPOINT_RULES = CheckpointRules()


def load_checkpoint(model: ReferFormer, path: Path) -> CheckpointReport:
    """Load ``path`` strictly into ``model``; CheckpointMismatch lists any key that does not fit."""
    return load_strict(model, path, CHECKPOINT_RULES)
