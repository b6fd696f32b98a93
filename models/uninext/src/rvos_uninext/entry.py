"""Registration of UNINEXT ViT-H and ConvNeXt-L with the inference driver (``rvos.models``).

Both are run, and trained (``rvos_uninext.training``), from the UNINEXT environment
(.venv-uninext): ``make infer-uninext-vith``, ``make train MODEL=uninext_vith CONFIG=...``.
"""

from __future__ import annotations

from dataclasses import replace

from rvos_nn.checkpoint import LEGACY_TEXT_BUFFERS, CheckpointRules
from rvos_nn.predictor import ModelEntry
from rvos_uninext.config import UninextConfig
from rvos_uninext.model import UNUSED_KEYS, build
from rvos_uninext.predictor import UninextOptions, create_predictor
from rvos_uninext.training import HOOKS

# A released UNINEXT file stores, besides the RVOS model: the SOT/VOS template backbone and the
# other tracking-only modules (UNUSED_KEYS, dropped by name), BERT's position_ids buffer of
# transformers < 4.31 (dropped) and the heads twice (detr.detr.{bbox,class}_embed and
# detr.detr.transformer.decoder.{bbox,class}_embed: one module here, both copies must be equal).
CHECKPOINT_RULES = CheckpointRules(ignore=(LEGACY_TEXT_BUFFERS, *UNUSED_KEYS))

# "zoo": the tiny network at the generated world's own frame size (short side 96, as the tiny
# zoo trains it, make zoo): the tiny variant's 160 would upsample those frames 1.7x.
VITH_VARIANTS: dict[str, UninextConfig] = {
    "full": UninextConfig.vit_huge(),
    "tiny": UninextConfig.tiny("vit"),
    "zoo": replace(UninextConfig.tiny("vit"), min_size_test=96, max_size_test=160),
}
CONVNEXT_VARIANTS: dict[str, UninextConfig] = {
    "full": UninextConfig.convnext_large(),
    "tiny": UninextConfig.tiny("convnext"),
    "zoo": replace(UninextConfig.tiny("convnext"), min_size_test=96, max_size_test=160),
}


def _entry(name: str, variants: dict[str, UninextConfig]) -> ModelEntry:
    """The two backbones share everything but their variants table."""
    return ModelEntry(
        name=name,
        variants=variants,
        module=build,
        predictor=create_predictor,
        value_domain="probability",
        checkpoint_rules=CHECKPOINT_RULES,
        checkpoint_file=f"{name}.pth",
        options=UninextOptions,
        training=HOOKS,
    )


VITH = _entry("uninext_vith", VITH_VARIANTS)
CONVNEXT = _entry("uninext_convnext", CONVNEXT_VARIANTS)
ENTRIES = (VITH, CONVNEXT)
