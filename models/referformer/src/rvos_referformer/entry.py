"""Registration of ReferFormer with the inference driver (entry point ``rvos.models``)."""

from __future__ import annotations

from rvos_nn.predictor import ModelEntry
from rvos_referformer.config import VARIANTS
from rvos_referformer.model import ReferFormer, build
from rvos_referformer.predictor import OPTIONS, create_predictor
from rvos_referformer.weights import CHECKPOINT_RULES


def build_variant(variant: str) -> ReferFormer:
    """The named variant ("full": the competition model; "tiny": for tests) with random weights."""
    return build(VARIANTS[variant])


ENTRY = ModelEntry(
    name="referformer",
    variants=tuple(VARIANTS),
    build=build_variant,
    create_predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="referformer_ft.pth",
    default_variant="full",
    options=OPTIONS,
)
