"""Registration of MUTR with the inference driver (entry point ``rvos.models``)."""

from __future__ import annotations

from rvos_mutr.config import VARIANTS
from rvos_mutr.model import MUTR, build
from rvos_mutr.predictor import OPTIONS, create_predictor
from rvos_mutr.weights import CHECKPOINT_RULES
from rvos_nn.predictor import ModelEntry


def build_variant(variant: str) -> MUTR:
    """The named variant ("full": the competition model; "tiny": for tests) with random weights."""
    return build(VARIANTS[variant])


# Checkpoints load strictly through rvos_mutr.weights.CHECKPOINT_RULES (see that module).
ENTRY = ModelEntry(
    name="mutr",
    variants=tuple(VARIANTS),
    build=build_variant,
    create_predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="mutr.pth",
    default_variant="full",
    options=OPTIONS,
)
