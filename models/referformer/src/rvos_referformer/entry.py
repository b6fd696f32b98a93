"""Registration of ReferFormer with the inference driver (entry point ``rvos.models``)."""

from __future__ import annotations

from rvos_core.checkpoint import CheckpointRules
from rvos_core.predictor import ModelEntry
from rvos_referformer.config import VARIANTS
from rvos_referformer.model import ReferFormer, build
from rvos_referformer.predictor import OPTIONS, create_predictor


def build_variant(variant: str) -> ReferFormer:
    """The named variant ("full": the competition model; "tiny": for tests) with random weights."""
    return build(VARIANTS[variant])


# The competition checkpoint stores the box heads twice (bbox_embed and
# transformer.decoder.bbox_embed: one module here) and the legacy text position_ids buffer (dropped
# by the default rules); everything else must match exactly.
ENTRY = ModelEntry(
    name="referformer",
    variants=tuple(VARIANTS),
    build=build_variant,
    create_predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CheckpointRules(),
    checkpoint_file="referformer_ft.pth",
    default_variant="full",
    options=OPTIONS,
)
