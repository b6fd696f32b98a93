"""SAM 3 (transformers ``Sam3VideoModel``) as a text-prompted rvos model package."""

from transformers import Sam3VideoConfig

from rvos_sam3.entry import CHECKPOINT_RULES, ENTRIES, ENTRY, VARIANTS, WEIGHTS, build
from rvos_sam3.predictor import Sam3Options, Sam3Predictor, Tracks, create_predictor

__all__ = [
    "CHECKPOINT_RULES",
    "ENTRIES",
    "ENTRY",
    "VARIANTS",
    "WEIGHTS",
    "Sam3Options",
    "Sam3Predictor",
    "Sam3VideoConfig",
    "Tracks",
    "build",
    "create_predictor",
]
