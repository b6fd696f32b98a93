"""Registration of SOC with the inference driver (entry point ``rvos.models``) and its
checkpoint key map."""

from __future__ import annotations

from rvos_core.checkpoint import LEGACY_TEXT_BUFFERS, CheckpointRules, KeyRule
from rvos_core.predictor import ModelEntry
from rvos_soc.config import VARIANTS
from rvos_soc.model import SOC, build
from rvos_soc.predictor import OPTIONS, create_predictor

# The public NeurIPS2023_SOC release names the temporal module ``voc``; the competition checkpoint
# (and this package) ``vita``. Everything else has the same keys.
PUBLIC_RELEASE_RENAMES = ((r"voc\.", "vita."),)
# Upstream's loader drops these when reporting unexpected keys: counters that the ``thop``
# profiler registers as buffers on every module and that a checkpoint saved after profiling holds.
PROFILER_COUNTERS = KeyRule(
    name="thop-profiler-counters",
    pattern=r"(.+\.)?total_(params|ops)",
    reason="buffers added by the thop profiler; upstream's loader ignores them",
)
# The checkpoint stores the box heads twice (bbox_embed and transformer.decoder.bbox_embed: one
# module here) and possibly the legacy text position_ids buffer; everything else must match.
CHECKPOINT_RULES = CheckpointRules(
    renames=PUBLIC_RELEASE_RENAMES, ignore=(LEGACY_TEXT_BUFFERS, PROFILER_COUNTERS)
)


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
