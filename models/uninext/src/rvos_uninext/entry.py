"""Registration of UNINEXT ViT-H and ConvNeXt-L with the inference driver (``rvos.models``).

Both are run from the UNINEXT environment (.venv-uninext): ``make infer-uninext-vith``.
"""

from __future__ import annotations

from collections.abc import Callable

from rvos_nn.checkpoint import LEGACY_TEXT_BUFFERS, CheckpointRules
from rvos_nn.predictor import ModelEntry
from rvos_uninext.config import UninextConfig
from rvos_uninext.model import UNUSED_KEYS, Uninext, build
from rvos_uninext.predictor import OPTIONS, create_predictor

# A released UNINEXT file stores, besides the RVOS model: the SOT/VOS template backbone and the
# other tracking-only modules (UNUSED_KEYS, dropped by name), BERT's position_ids buffer of
# transformers < 4.31 (dropped) and the heads twice (detr.detr.{bbox,class}_embed and
# detr.detr.transformer.decoder.{bbox,class}_embed: one module here, both copies must be equal).
CHECKPOINT_RULES = CheckpointRules(ignore=(LEGACY_TEXT_BUFFERS, *UNUSED_KEYS))

VITH_VARIANTS: dict[str, Callable[[], UninextConfig]] = {
    "full": UninextConfig.vit_huge,
    "tiny": lambda: UninextConfig.tiny("vit"),
}
CONVNEXT_VARIANTS: dict[str, Callable[[], UninextConfig]] = {
    "full": UninextConfig.convnext_large,
    "tiny": lambda: UninextConfig.tiny("convnext"),
}


def build_vith(variant: str) -> Uninext:
    """UNINEXT ViT-H ("full", the competition model) or the tiny ViT test model, random weights."""
    return build(VITH_VARIANTS[variant]())


def build_convnext(variant: str) -> Uninext:
    """UNINEXT ConvNeXt-L ("full") or the tiny ConvNeXt test model, random weights."""
    return build(CONVNEXT_VARIANTS[variant]())


VITH = ModelEntry(
    name="uninext_vith",
    variants=tuple(VITH_VARIANTS),
    build=build_vith,
    create_predictor=create_predictor,
    value_domain="probability",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="uninext_vith.pth",
    default_variant="full",
    options=OPTIONS,
)
CONVNEXT = ModelEntry(
    name="uninext_convnext",
    variants=tuple(CONVNEXT_VARIANTS),
    build=build_convnext,
    create_predictor=create_predictor,
    value_domain="probability",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file="uninext_convnext.pth",
    default_variant="full",
    options=OPTIONS,
)
