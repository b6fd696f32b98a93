"""Registration of ReferFormer with the inference driver and the training engine (entry point
``rvos.models``)."""

from __future__ import annotations

from rvos_nn.predictor import ModelEntry
from rvos_nn.training import LANGUAGE_QUERY_HOOKS
from rvos_referformer.config import VARIANTS
from rvos_referformer.model import build
from rvos_referformer.predictor import ReferFormerOptions, create_predictor
from rvos_referformer.weights import CHECKPOINT_RULES

ENTRY = ModelEntry(
    name="referformer",
    variants=VARIANTS,
    module=build,
    predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="referformer_ft.pth",
    options=ReferFormerOptions,
    training=LANGUAGE_QUERY_HOOKS,
)
ENTRIES = (ENTRY,)
