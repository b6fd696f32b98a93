"""SOC (competition copy ``soc_test``, Video-Swin-B, checkpoint joint_base.tar) as an rvos model
package."""

from rvos_soc.config import (
    FULL,
    TINY,
    VARIANTS,
    DeformTransformerConfig,
    SOCConfig,
    VitaConfig,
)
from rvos_soc.entry import ENTRIES, ENTRY
from rvos_soc.model import SOC, SOCOutput, build
from rvos_soc.predictor import SOCOptions, SOCPredictor, create_predictor
from rvos_soc.spatial_decoder import FPNSpatialDecoder
from rvos_soc.weights import CHECKPOINT_RULES, load_checkpoint

__all__ = [
    "CHECKPOINT_RULES",
    "ENTRIES",
    "ENTRY",
    "FULL",
    "SOC",
    "TINY",
    "VARIANTS",
    "DeformTransformerConfig",
    "FPNSpatialDecoder",
    "SOCConfig",
    "SOCOptions",
    "SOCOutput",
    "SOCPredictor",
    "VitaConfig",
    "build",
    "create_predictor",
    "load_checkpoint",
]
