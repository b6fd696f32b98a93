"""SOC: semantic-assisted object cluster for referring video object segmentation.

Paper: Luo, Yang, Zhang, Zhang, Wang, Wang, Wu, "SOC: Semantic-Assisted Object Cluster for
Referring Video Object Segmentation", NeurIPS 2023. Upstream: the competition copy
``soc_test/models/mttr.py`` (class ``MTTR``) with ``vita.py``, ``vla.py``, ``segmentation.py``,
``deformable_transformer.py`` and ``video_swin_transformer.py`` in RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0dca85da0719b32ea45253f8b3077defea6 (checkpoint ``joint_base.tar``); public release
RobertLuo1/NeurIPS2023_SOC, whose temporal module is named ``voc`` instead of ``vita``.

State-dict keys are upstream's: ``backbone.0.body.*``, ``input_proj``, ``transformer`` (with
``transformer.decoder.bbox_embed`` = ``bbox_embed``, stored twice), ``class_embed``,
``bbox_embed``, ``text_encoder``, ``query_embed``, ``spatial_decoder``, ``vita``, ``vlf``,
``lvf``, ``txt_proj``, ``controller``.

Forward of one video and one expression (eval): RoBERTa -> ``txt_proj`` on the words and on the
pooler output (the sentence feature); Video-Swin -> input projections of the stride 8/16/32 stages
and an extra stride-64 level; ``vlf`` multiplies every level by its attention over the words;
deformable transformer with zero content queries and ``query_embed`` positions; ``vita`` turns the
last decoder layer's per-frame states into video queries (content = the sentence feature); the
video queries are added to the per-frame states. As upstream in eval, the returned predictions are
those of decoder **layer 0** (upstream zips the per-layer outputs with the single eval output of
``vita``): ``class_embed.0``, ``bbox_embed.0`` from the initial 2-D references, the controller's
dynamic convs on the ``spatial_decoder`` mask features with the references ``inter_references[0]``.

Differences from upstream: one video per call (upstream's inference batch), split into the
text-independent ``encode_video`` (reused by every expression) and ``decode``; token ids come from
the caller (rvos_nn.text reproduces upstream's tokenizer call); the heads of decoder layers 1..L-1
are not computed (upstream computes and discards them in eval); ``lvf`` (text attending to the
/32 level, whose mean feeds only the training loss) runs only when ``with_text_feature=True``
(its weights always load); only the competition code path (box refinement, ``text_refer_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rvos_nn.layers import TemporalQueryModule, VisionLanguageFusion, maps_to_tokens
from rvos_nn.layers.video_text import (
    TextFeatures,
    VideoFeatures,
    VideoTextModel,
    boxes_from_reference,
)
from rvos_soc.config import SOCConfig
from rvos_soc.spatial_decoder import FPNSpatialDecoder


@dataclass(frozen=True)
class SOCOutput:
    """Upstream's eval output, time-first as upstream (batch 1).

    Attributes:
        pred_is_referred: [T, 1, Q, K] class logits (decoder layer 0 + video queries).
        pred_boxes: [T, 1, Q, 4] (cx, cy, w, h in 0..1).
        pred_masks: [T, 1, Q, h, w] mask logits at stride 4 of the padded input.
        pred_logit: [1, Q, C] the video queries of ``vita`` (upstream's name).
        text_sentence_feature: [1, C] mean of ``lvf``'s text states over the words (training
            only upstream); None unless requested.
    """

    pred_is_referred: Tensor
    pred_boxes: Tensor
    pred_masks: Tensor
    pred_logit: Tensor
    text_sentence_feature: Tensor | None


class SOC(VideoTextModel):
    """The competition SOC (see the module docstring)."""

    TEXT_PROJECTION = "txt_proj"

    def __init__(self, *, config: SOCConfig):
        super().__init__()
        self.config = config
        tc, vc = config.transformer, config.vita
        d = tc.d_model
        channels = self.add_encoders(
            backbone=config.backbone,
            text=config.text,
            d_model=d,
            num_feature_levels=tc.num_feature_levels,
        )
        self.add_decoder(tc, num_classes=config.num_classes)
        self.spatial_decoder = FPNSpatialDecoder(
            context_dim=d,
            fpn_dims=[d, d, channels[0]],
            mask_kernels_dim=config.mask_kernels_dim,
        )
        self.vita = TemporalQueryModule(
            d_model=vc.input_dim,
            num_frame_queries=vc.num_frame_queries,
            num_queries=vc.num_queries,
            nheads=vc.nheads,
            dim_feedforward=vc.dim_feedforward,
            enc_layers=vc.enc_layers,
            dec_layers=vc.dec_layers,
            window_size=vc.window_size,
            dropout=vc.dropout,
        )
        self.vlf = VisionLanguageFusion(d_model=d, nhead=config.fusion_heads, combine="multiply")
        self.lvf = VisionLanguageFusion(d_model=d, nhead=config.fusion_heads, combine="multiply")
        self.add_mask_head(
            in_channels=config.mask_kernels_dim,
            channels=config.dynamic_mask_channels,
            num_layers=config.controller_layers,
            rel_coord=config.rel_coord,
            d_model=d,
        )

    def decode(
        self,
        video: VideoFeatures,
        text: TextFeatures,
        size: Tensor,
        *,
        with_text_feature: bool = False,
    ) -> SOCOutput:
        """Everything that depends on the text. size: (H, W) of the model input (int64 [2])."""
        t, q = video.num_frames, self.config.transformer.num_queries
        srcs, words, _ = self.fuse_levels(self.vlf, video, text)
        query_pos = self.query_embed.weight
        tgt = torch.zeros_like(query_pos)[None].expand(t, q, -1)
        out = self.transformer(srcs, video.level_masks, video.level_pos, tgt, query_pos)
        video_queries = self.vita(out.hs[-1][:, None], text.sentence)  # [1, Q, d]
        states = out.hs[0] + video_queries  # decoder layer 0 (upstream's eval output)
        boxes = boxes_from_reference(self.bbox_embed[0](states), out.init_reference)
        skips = [out.memory[1], out.memory[0], video.features[0]]
        mask_features = self.spatial_decoder(out.memory[2], skips)
        masks = self.mask_head(
            mask_features[None],
            self.controller(states)[None],
            out.inter_references[0, ..., :2][None],
            size[None],
        )
        return SOCOutput(
            pred_is_referred=self.class_embed[0](states)[:, None],
            pred_boxes=boxes[:, None],
            pred_masks=masks[0][:, None],
            pred_logit=video_queries,
            text_sentence_feature=self._text_feature(video, text, words)
            if with_text_feature
            else None,
        )

    def _text_feature(self, video: VideoFeatures, text: TextFeatures, words: Tensor) -> Tensor:
        """``lvf`` on the stride-32 level: the words attend to its un-fused visual tokens (visual
        position on the keys, frame padding as key padding); mean over the unpadded words."""
        level = len(video.projected) - 2  # the last backbone level
        tokens = maps_to_tokens(video.projected[level], 1)
        pos = maps_to_tokens(video.level_pos[level], 1)
        padding = video.level_masks[level].reshape(1, -1)
        states = self.lvf(words, tokens, padding, pos)  # [L, 1, d]
        return states[:, 0][~text.pad_mask[0]].mean(0, keepdim=True)


def build(config: SOCConfig) -> SOC:
    """SOC with random weights (works under ``torch.device("meta")``)."""
    return SOC(config=config)
