"""The text-independent and text stages of the Video-Swin RVOS models (ReferFormer, MUTR).

Upstream: the first part of ``forward`` in ``ReferFormer/models/referformer.py`` and
``MUTR/models/mutr.py`` (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d): backbone, the 1x1 input
projections of the stride 8 / 16 / 32 stages, the extra stride-64 level from the raw last stage,
their masks and sine positions; the RoBERTa words and pooled sentence through ``resizer``; the
early vision-language fusion of one level; the box of a decoder layer from its reference.

Differences: one video per call (upstream's inference batch), split into a text-independent part
(``encode_video_features``, reused by every expression of a video) and the text part.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rvos_core.layers.backbone import Joiner, resize_mask
from rvos_core.layers.box import inverse_sigmoid
from rvos_core.layers.cross_modal_fpn import VisionLanguageFusion, maps_to_tokens, tokens_to_maps


@dataclass(frozen=True)
class VideoFeatures:
    """The text-independent part of one video's forward (reused by all its expressions).

    Attributes:
        features: backbone stages [T, C_i, h_i, w_i] (stride 4 ... 32).
        masks: bool [T, h, w] per transformer level and per backbone stage: ``level_masks`` for
            the stride 8, 16, 32, 64 levels; ``stage_masks`` for stride 4 ... 32.
        level_pos, stage_pos: [T, d, h, w] sine positions of the same maps.
        projected: [T, d, h_l, w_l] input projections of the transformer levels (before fusion).
    """

    features: list[Tensor]
    stage_masks: list[Tensor]
    stage_pos: list[Tensor]
    projected: list[Tensor]
    level_masks: list[Tensor]
    level_pos: list[Tensor]

    @property
    def num_frames(self) -> int:
        return self.features[0].shape[0]


@dataclass(frozen=True)
class TextFeatures:
    """words [1, L, d], pad_mask bool [1, L] (True = padding), sentence [1, d]."""

    words: Tensor
    pad_mask: Tensor
    sentence: Tensor


def encode_video_features(
    backbone: Joiner, input_proj: nn.ModuleList, frames: Tensor
) -> VideoFeatures:
    """frames: [T, 3, H, W] normalised (one unpadded video). Backbone, positions and input
    projections: ``input_proj[:-1]`` on stages 2..n, ``input_proj[-1]`` on the raw last stage."""
    t, _, h, w = frames.shape
    mask = torch.zeros((1, t, h, w), dtype=torch.bool, device=frames.device)
    out = backbone(frames[None], mask)
    stages = out.features[1:]
    projected = [proj(x) for proj, x in zip(input_proj[:-1], stages, strict=True)]
    extra = input_proj[-1](out.features[-1])
    extra_mask = resize_mask(mask[0], extra.shape[-2:])
    extra_pos = backbone[1](extra_mask).to(extra.dtype)
    return VideoFeatures(
        features=out.features,
        stage_masks=out.masks,
        stage_pos=out.pos,
        projected=[*projected, extra],
        level_masks=[*out.masks[1:], extra_mask],
        level_pos=[*out.pos[1:], extra_pos],
    )


def encode_text_features(
    text_encoder: nn.Module, resizer: nn.Module, input_ids: Tensor, attention_mask: Tensor
) -> TextFeatures:
    """input_ids, attention_mask: int64 [1, L] from upstream's tokenizer call; words and the
    pooled sentence go through ``resizer``; the padding mask is ``attention_mask != 1``."""
    encoded = text_encoder(input_ids=input_ids, attention_mask=attention_mask)
    words = resizer(encoded.last_hidden_state)
    sentence = resizer(encoded.pooler_output)
    return TextFeatures(words, attention_mask.ne(1), sentence)


def fuse_level(
    fusion: VisionLanguageFusion, x: Tensor, words: Tensor, pad_mask: Tensor, text_pos: Tensor
) -> Tensor:
    """Early fusion of one level x [T, d, h, w] with the words [L, 1, d] (sequence-first, text
    position [L, 1, d] on the keys, pad_mask [1, L]); returns [T, d, h, w]."""
    t, _, h, w = x.shape
    fused = fusion(maps_to_tokens(x, 1), words, pad_mask, text_pos)
    return tokens_to_maps(fused, t, h, w)


def boxes_from_reference(delta: Tensor, reference: Tensor) -> Tensor:
    """Boxes (cx, cy, w, h in 0..1) of a box head's output ``delta`` [..., 4] relative to a
    reference [..., 2 | 4] in 0..1: sigmoid(delta + inverse_sigmoid(reference)) (a 2-D
    reference moves the centre only)."""
    reference = inverse_sigmoid(reference)
    if reference.shape[-1] == 4:
        return (delta + reference).sigmoid()
    return torch.cat([delta[..., :2] + reference, delta[..., 2:]], -1).sigmoid()
