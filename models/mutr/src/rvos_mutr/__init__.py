"""MUTR (competition copy, Video-Swin-B) as an rvos model package."""

from rvos_mutr.config import FULL, TINY, VARIANTS, MUTRConfig
from rvos_mutr.entry import ENTRIES, ENTRY
from rvos_mutr.model import MTA, MUTR, MTALayer, MUTROutput, build
from rvos_mutr.predictor import MUTROptions, MUTRPredictor, create_predictor
from rvos_mutr.weights import CHECKPOINT_RULES, load_checkpoint

__all__ = [
    "CHECKPOINT_RULES",
    "ENTRIES",
    "ENTRY",
    "FULL",
    "MTA",
    "MUTR",
    "TINY",
    "VARIANTS",
    "MTALayer",
    "MUTRConfig",
    "MUTROptions",
    "MUTROutput",
    "MUTRPredictor",
    "build",
    "create_predictor",
    "load_checkpoint",
]
