"""Registration of SOC with the inference driver (entry point ``rvos.models``)."""

from __future__ import annotations

from rvos_nn.predictor import ModelEntry
from rvos_soc.config import VARIANTS
from rvos_soc.model import SOC, build
from rvos_soc.predictor import OPTIONS, create_predictor
from rvos_soc.weights import CHECKPOINT_RULES


def build_variant(variant: str) -> SOC:
    """The named variant ("full": the competition model; "tiny": for tests) with random weights."""
    return build(VARIANTS[variant])


ENTRY = ModelEntry(
    name="soc",
    variants=tuple(VARIANTS),
    build=build_variant,
    create_predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="soc.tar",
    default_variant="full",
    options=OPTIONS,
)
