"""Registration of MUTR with the inference driver and the training engine (entry point
``rvos.models``)."""

from __future__ import annotations

from rvos_mutr.config import VARIANTS
from rvos_mutr.model import build
from rvos_mutr.predictor import MUTROptions, create_predictor
from rvos_mutr.weights import CHECKPOINT_RULES
from rvos_nn.predictor import ModelEntry
from rvos_nn.training import LANGUAGE_QUERY_HOOKS

ENTRY = ModelEntry(
    name="mutr",
    variants=VARIANTS,
    module=build,
    predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="mutr.pth",
    options=MUTROptions,
    training=LANGUAGE_QUERY_HOOKS,
)
ENTRIES = (ENTRY,)
