"""Backbone + position-embedding wrapper of the DETR family (``backbone.0.body.*``, ``backbone.1``).

Upstream: ``BackboneBase``, ``Joiner`` in ``ReferFormer/models/video_swin_transformer.py`` and
``nested_tensor_from_videos_list`` in ``util/misc.py``, RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d.
Differences: padded batches are a (tensor, mask) pair instead of a ``NestedTensor``; outputs are a
named tuple of lists instead of lists of ``NestedTensor``. SOC's joiner takes time-first input:
transpose to video-first before calling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.layers.position import PositionEmbeddingSine2D
from rvos_nn.layers.video_swin import VideoSwinBackbone


class BackboneOutput(NamedTuple):
    """Per stage (stride 4, 8, 16, 32 for Video-Swin), frames of all videos stacked video-major.

    features: [B * T, C_i, h_i, w_i]; masks: bool [B * T, h_i, w_i] (True = padding);
    pos: [B * T, 2 * num_pos_feats, h_i, w_i] in the features' dtype.
    """

    features: list[Tensor]
    masks: list[Tensor]
    pos: list[Tensor]


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """bool [N, H, W] -> bool [N, h, w] by nearest interpolation (as every DETR-style model)."""
    return F.interpolate(mask[None].float(), size=tuple(size)).to(torch.bool)[0]


def pad_videos(videos: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Zero-pad videos [T_i, C, H_i, W_i] to one [B, T, C, H, W] batch and its mask [B, T, H, W]
    (True on padding, frames included)."""
    t = max(v.shape[0] for v in videos)
    h = max(v.shape[2] for v in videos)
    w = max(v.shape[3] for v in videos)
    first = videos[0]
    batch = first.new_zeros((len(videos), t, first.shape[1], h, w))
    mask = torch.ones((len(videos), t, h, w), dtype=torch.bool, device=first.device)
    for video, padded, video_mask in zip(videos, batch, mask, strict=True):
        padded[: video.shape[0], :, : video.shape[2], : video.shape[3]].copy_(video)
        video_mask[: video.shape[0], : video.shape[2], : video.shape[3]] = False
    return batch, mask


class MaskedBackbone(nn.Module):
    """Runs ``body`` and resizes the padding mask to every stage (upstream ``BackboneBase``)."""

    def __init__(self, body: VideoSwinBackbone):
        super().__init__()
        self.body = body
        self.num_channels = body.num_channels
        self.strides = body.strides

    def forward(self, frames: Tensor, mask: Tensor, num_frames: int) -> list[tuple[Tensor, Tensor]]:
        """frames [B * T, 3, H, W], mask [B * T, H, W] -> per stage (features, mask)."""
        return [(x, resize_mask(mask, x.shape[-2:])) for x in self.body(frames, num_frames)]


class Joiner(nn.Sequential):
    """``Joiner(MaskedBackbone, PositionEmbeddingSine2D)``: features, masks and positions."""

    def __init__(self, backbone: MaskedBackbone, position_embedding: PositionEmbeddingSine2D):
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels
        self.strides = backbone.strides

    def forward(self, videos: Tensor, mask: Tensor) -> BackboneOutput:
        """videos: [B, T, 3, H, W]; mask: bool [B, T, H, W] (True = padding)."""
        t = videos.shape[1]
        stages = self[0](videos.flatten(0, 1), mask.flatten(0, 1), num_frames=t)
        features = [x for x, _ in stages]
        masks = [m for _, m in stages]
        pos = [self[1](m).to(x.dtype) for x, m in stages]
        return BackboneOutput(features, masks, pos)
