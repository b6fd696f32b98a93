"""Registration of MUTR with the inference driver (entry point ``rvos.models``)."""

from __future__ import annotations

from rvos_core.checkpoint import CheckpointRules
from rvos_core.predictor import ModelEntry
from rvos_mutr.config import VARIANTS
from rvos_mutr.model import MUTR, build
from rvos_mutr.predictor import OPTIONS, create_predictor


def build_variant(variant: str) -> MUTR:
    """The named variant ("full": the competition model; "tiny": for tests) with random weights."""
    return build(VARIANTS[variant])


# The competition checkpoint (video_swin_b_p4w7.pth, saved by MUTR/train.py under 'model') stores
# the box heads twice (bbox_embed and transformer.decoder.bbox_embed: one module here) and the
# legacy text position_ids buffer (dropped by the default rules); everything else must match.
ENTRY = ModelEntry(
    name="mutr",
    variants=tuple(VARIANTS),
    build=build_variant,
    create_predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CheckpointRules(),
    checkpoint_file="mutr.pth",
    default_variant="full",
    options=OPTIONS,
)
