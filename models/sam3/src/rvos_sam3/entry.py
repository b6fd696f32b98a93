"""Registration of SAM 3 with the inference driver (entry point ``rvos.models``): its weights are
the Hugging Face folder CHECKPOINTS/sam3 (a copy of facebook/sam3), loaded by ``WEIGHTS``."""

from __future__ import annotations

from transformers import Sam3VideoConfig, Sam3VideoModel

from rvos_nn.checkpoint import CheckpointRules
from rvos_nn.hf_video import HubWeights, sam3_video_config
from rvos_nn.predictor import ModelEntry
from rvos_sam3.predictor import Sam3Options, create_predictor

WEIGHTS = HubWeights(
    title="SAM 3",
    model_class=Sam3VideoModel,
    model_types=("sam3_video",),
    folder="sam3",
    hub="facebook/sam3",
)
# A state dict saved from this module loads as it is (python -m rvos_nn.checkpoint_report sam3 FILE).
CHECKPOINT_RULES = CheckpointRules()


def tiny() -> Sam3VideoConfig:
    """A 56-pixel SAM 3 whose random weights detect: their scores are about 0.25, so the
    detection thresholds are 0.2 (the library's: 0.5 and 0.7), with at most 4 objects."""
    config = sam3_video_config(56, 2, 128, queries=2)
    config.score_threshold_detection = config.new_det_thresh = 0.2
    config.max_num_objects = 4
    return config


# "full": the library's default configuration (facebook/sam3's); "tiny": for tests. With a
# weights folder (--checkpoint) the folder's config.json is the configuration.
VARIANTS = {"full": Sam3VideoConfig(), "tiny": tiny()}


def build(config: Sam3VideoConfig) -> Sam3VideoModel:
    """SAM 3 of ``config`` with random weights."""
    return Sam3VideoModel(config).eval()


ENTRY = ModelEntry(
    name="sam3",
    variants=VARIANTS,
    module=build,
    predictor=create_predictor,
    value_domain="logit",
    checkpoint_rules=CHECKPOINT_RULES,
    checkpoint_file=WEIGHTS.folder,
    default_variant="full",
    options=Sam3Options,
    folder_weights=WEIGHTS,
)
ENTRIES = (ENTRY,)
