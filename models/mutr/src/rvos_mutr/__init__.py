"""MUTR (competition copy, Video-Swin-B) as an rvos model package."""

from rvos_mutr.config import FULL, TINY, VARIANTS, MUTRConfig
from rvos_mutr.model import MTA, MUTR, MTALayer, MUTROutput, build
from rvos_mutr.predictor import MUTRPredictor, create_predictor

__all__ = [
    "FULL",
    "MTA",
    "MUTR",
    "TINY",
    "VARIANTS",
    "MTALayer",
    "MUTRConfig",
    "MUTROutput",
    "MUTRPredictor",
    "build",
    "create_predictor",
]
