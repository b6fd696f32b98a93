"""ReferFormer (competition copy, Video-Swin-B) as an rvos model package."""

from rvos_nn.postprocess import VideoPrediction, postprocess, select_query
from rvos_nn.preprocess import preprocess_frames, resize_short_side
from rvos_referformer.config import FULL, TINY, VARIANTS, ReferFormerConfig
from rvos_referformer.entry import ENTRIES, ENTRY
from rvos_referformer.model import (
    ReferFormer,
    ReferFormerOutput,
    TextFeatures,
    VideoFeatures,
    build,
)
from rvos_referformer.predictor import ReferFormerOptions, ReferFormerPredictor, create_predictor
from rvos_referformer.weights import CHECKPOINT_RULES, load_checkpoint

__all__ = [
    "CHECKPOINT_RULES",
    "ENTRIES",
    "ENTRY",
    "FULL",
    "TINY",
    "VARIANTS",
    "ReferFormer",
    "ReferFormerConfig",
    "ReferFormerOptions",
    "ReferFormerOutput",
    "ReferFormerPredictor",
    "TextFeatures",
    "VideoFeatures",
    "VideoPrediction",
    "build",
    "create_predictor",
    "load_checkpoint",
    "postprocess",
    "preprocess_frames",
    "resize_short_side",
    "select_query",
]
