"""Loading MUTR checkpoints (the competition ``video_swin_b_p4w7.pth``, stored as ``mutr.pth``).

Saved upstream by ``MUTR/train.py`` as ``{'model', 'optimizer', 'lr_scheduler', 'epoch', 'args'}``;
the weights under ``'model'`` use this package's key names. Two things differ from a current state
dict and are handled by rvos_nn.checkpoint's default rules: the box heads are stored under both
``bbox_embed.*`` and ``transformer.decoder.bbox_embed.*`` (one module here: the copies must be
equal), and ``text_encoder.embeddings.position_ids`` (a buffer of transformers < 4.31) is dropped.
Anything else that does not fit (e.g. a ReferFormer checkpoint: no ``MTA.*`` / ``mti.*``) is a
CheckpointMismatch raised before a single tensor is copied.
"""

from __future__ import annotations

from pathlib import Path

from rvos_mutr.model import MUTR
from rvos_nn.checkpoint import CheckpointReport, CheckpointRules
from rvos_nn.checkpoint import load_checkpoint as load_strict

CHECKPOINT_RULES = CheckpointRules()


def load_checkpoint(model: MUTR, path: Path) -> CheckpointReport:
    """Load ``path`` strictly into ``model``; CheckpointMismatch lists any key that does not fit."""
    return load_strict(model, path, CHECKPOINT_RULES)
