"""Registration of SOC with the inference driver and the training engine (entry point
``rvos.models``)."""

from __future__ import annotations

from rvos_nn.predictor import ModelEntry
from rvos_soc.config import VARIANTS
from rvos_soc.model import build
from rvos_soc.predictor import SOCOptions, create_predictor
from rvos_soc.training import HOOKS
from rvos_soc.weights import CHECKPOINT_RULES

ENTRY = ModelEntry(
    name="soc",
    variants=VARIANTS,
    module=build,
    predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="soc.tar",
    options=SOCOptions,
    training=HOOKS,
)
ENTRIES = (ENTRY,)
