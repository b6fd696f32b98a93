"""UNINEXT (Yan et al., CVPR 2023) for referring video object segmentation: the RVOS inference path
of the ViT-H and ConvNeXt-L "video joint" models of the ICCV 2023 LSVOS winner."""

from rvos_uninext.config import UninextConfig
from rvos_uninext.entry import CHECKPOINT_RULES, CONVNEXT, ENTRIES, VITH
from rvos_uninext.model import Uninext, build
from rvos_uninext.predictor import UninextOptions, UninextPredictor, create_predictor

__all__ = [
    "CHECKPOINT_RULES",
    "CONVNEXT",
    "ENTRIES",
    "VITH",
    "Uninext",
    "UninextConfig",
    "UninextOptions",
    "UninextPredictor",
    "build",
    "create_predictor",
]
