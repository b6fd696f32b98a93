"""Loading SOC checkpoints: the competition ``joint_base.tar`` and the public NeurIPS2023_SOC ones.

Saved upstream by ``jointtrainer.py`` as ``{'epoch', 'total_epochs', 'model_state_dict',
'optimizer_state_dict', 'scheduler_state_dict', 'grad_scaler_state_dict', 'best_loss'}``; the
weights under ``'model_state_dict'`` use this package's key names, except:
- the public release names the temporal module ``voc`` (``voc.*`` -> ``vita.*``, the key map);
- the box heads are stored under both ``bbox_embed.*`` and ``transformer.decoder.bbox_embed.*``
  (one module here: the copies must be equal);
- ``text_encoder.embeddings.position_ids`` (a buffer of transformers < 4.31) is dropped;
- ``*total_params`` / ``*total_ops`` (thop profiler counters, which upstream's loader ignores) are
  dropped.
Any other difference stops the load with a report before a tensor is copied.
"""

from __future__ import annotations

from pathlib import Path

from rvos_nn.checkpoint import LEGACY_TEXT_BUFFERS, CheckpointReport, CheckpointRules, KeyRule
from rvos_nn.checkpoint import load_checkpoint as load_strict
from rvos_soc.model import SOC

PUBLIC_RELEASE_RENAMES = ((r"voc\.", "vita."),)
PROFILER_COUNTERS = KeyRule(
    name="thop-profiler-counters",
    pattern=r"(.+\.)?total_(params|ops)",
    reason="buffers added by the thop profiler; upstream's loader ignores them",
)
CHECKPOINT_RULES = CheckpointRules(
    renames=PUBLIC_RELEASE_RENAMES, ignore=(LEGACY_TEXT_BUFFERS, PROFILER_COUNTERS)
)


def load_checkpoint(model: SOC, path: Path) -> CheckpointReport:
    """Load ``path`` strictly into ``model``; CheckpointMismatch lists any key that does not fit."""
    return load_strict(model, path, CHECKPOINT_RULES)
