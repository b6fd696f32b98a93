"""Shared neural-network layers of the RVOS models (ReferFormer, MUTR, SOC, UNINEXT).

Parameter names follow the upstream code so that checkpoints load without a key map; model
quirks stay in the model packages.
"""

from rvos_nn.layers.backbone import (
    BackboneOutput,
    Joiner,
    MaskedBackbone,
    pad_videos,
    resize_mask,
)
from rvos_nn.layers.box import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid
from rvos_nn.layers.cross_modal_fpn import (
    Conv2dNorm,
    CrossModalFPNDecoder,
    VisionLanguageBlock,
    VisionLanguageFusion,
    maps_to_tokens,
    tokens_to_maps,
)
from rvos_nn.layers.deformable_transformer import (
    DeformableTransformer,
    TransformerOutput,
    input_projections,
    valid_ratios,
)
from rvos_nn.layers.mask_head import (
    DynamicMaskHead,
    aligned_bilinear,
    compute_locations,
    dynamic_param_counts,
    parse_dynamic_params,
)
from rvos_nn.layers.mlp import MLP
from rvos_nn.layers.ms_deform_attn import MSDeformAttn, ms_deform_attn_core
from rvos_nn.layers.position import PositionEmbeddingSine1D, PositionEmbeddingSine2D
from rvos_nn.layers.temporal import TemporalQueryModule, shifted_window_mask
from rvos_nn.layers.video_swin import (
    VIDEO_SWIN_CONFIGS,
    VideoSwinBackbone,
    VideoSwinConfig,
    build_video_swin,
)

__all__ = [
    "MLP",
    "VIDEO_SWIN_CONFIGS",
    "BackboneOutput",
    "Conv2dNorm",
    "CrossModalFPNDecoder",
    "DeformableTransformer",
    "DynamicMaskHead",
    "Joiner",
    "MSDeformAttn",
    "MaskedBackbone",
    "PositionEmbeddingSine1D",
    "PositionEmbeddingSine2D",
    "TemporalQueryModule",
    "TransformerOutput",
    "VideoSwinBackbone",
    "VideoSwinConfig",
    "VisionLanguageBlock",
    "VisionLanguageFusion",
    "aligned_bilinear",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "build_video_swin",
    "compute_locations",
    "dynamic_param_counts",
    "input_projections",
    "inverse_sigmoid",
    "maps_to_tokens",
    "ms_deform_attn_core",
    "pad_videos",
    "parse_dynamic_params",
    "resize_mask",
    "shifted_window_mask",
    "tokens_to_maps",
    "valid_ratios",
]
