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

Training (``layer_outputs``, upstream's train-mode forward with ``aux_loss``): ``vita`` runs on
every decoder layer's per-frame states (the sentence feature as content for each; dropout 0.1
active), layer ``l``'s video queries are added to layer ``l``'s states and head ``l`` reads them;
``pred_logit`` is layer ``l``'s video queries, ``text_sentence_feature`` the mean of ``lvf``'s
text states (one tensor for all layers); the last layer is the output, layers 0..L-2 the
``aux_outputs``, time-first [T, B, ...] as upstream.

Differences from upstream: one video per call (upstream's inference batch), split into the
text-independent ``encode_video`` (reused by every expression) and ``decode``; token ids come from
the caller (rvos_nn.text reproduces upstream's tokenizer call); in eval the heads of decoder
layers 1..L-1 are not computed (upstream computes and discards them); ``lvf`` (text attending to
the /32 level, whose mean feeds only the training loss) runs in eval only when
``with_text_feature=True`` (its weights always load); only the competition code path (box
refinement, ``text_refer_loss``). A training batch runs clip by clip
(rvos_nn.training.forward_clips; nothing couples clips): upstream's ``vita`` reshapes its
[L, T, B, ...] input as [L * B, T, ...], right for batch 1 only (SOC trained with ``-bs 1``),
while each clip here reads its own states, which is upstream's value for batch 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rvos_nn.layers import (
    TemporalQueryModule,
    TransformerOutput,
    VisionLanguageFusion,
    maps_to_tokens,
)
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
        """Everything that depends on the text, as upstream's eval path (decoder layer 0 with the
        last layer's video queries). size: (H, W) of the model input (int64 [2])."""
        out, words = self._transformer(video, text)
        video_queries = self.vita(out.hs[-1][:, None], text.sentence)  # [1, Q, d]
        heads = self._heads(
            out, 0, out.hs[0] + video_queries, self._mask_features(video, out), size
        )
        return SOCOutput(
            **heads,
            pred_logit=video_queries,
            text_sentence_feature=self._text_feature(video, text, words)
            if with_text_feature
            else None,
        )

    def layer_outputs(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor
    ) -> list[dict[str, Tensor]]:
        """Upstream's training predictions, one dict per decoder layer (first to last): ``vita``
        turns each layer's per-frame states into that layer's video queries (content: the
        sentence feature), which are added to that layer's states before its heads.

        Keys (batch axis of size 1): ``pred_is_referred`` [T, 1, Q, K], ``pred_boxes``
        [T, 1, Q, 4], ``pred_masks`` [T, 1, Q, h, w], ``pred_logit`` [1, Q, C] (the layer's video
        queries) and ``text_sentence_feature`` [1, C] (one tensor shared by every layer).
        size: (H, W) of the clip (int64 [2]).
        """
        out, words = self._transformer(video, text)
        layers = out.hs.shape[0]
        video_queries = self.vita(out.hs.transpose(0, 1), text.sentence.expand(layers, -1))
        mask_features = self._mask_features(video, out)
        sentence = self._text_feature(video, text, words)
        return [
            {
                **self._heads(out, lvl, out.hs[lvl] + queries, mask_features, size),
                "pred_logit": queries[None],
                "text_sentence_feature": sentence,
            }
            for lvl, queries in enumerate(video_queries)
        ]

    def _transformer(
        self, video: VideoFeatures, text: TextFeatures
    ) -> tuple[TransformerOutput, Tensor]:
        """``vlf`` fusion, transformer with zero content queries; also the words [L, 1, d]."""
        t, q = video.num_frames, self.config.transformer.num_queries
        srcs, words, _ = self.fuse_levels(self.vlf, video, text)
        query_pos = self.query_embed.weight
        tgt = torch.zeros_like(query_pos)[None].expand(t, q, -1)
        return self.transformer(srcs, video.level_masks, video.level_pos, tgt, query_pos), words

    def _mask_features(self, video: VideoFeatures, out: TransformerOutput) -> Tensor:
        """``spatial_decoder`` on the encoder memory and the stride-4 stage: [T, C, h, w]."""
        skips = [out.memory[1], out.memory[0], video.features[0]]
        return self.spatial_decoder(out.memory[2], skips)

    def _heads(
        self,
        out: TransformerOutput,
        lvl: int,
        states: Tensor,
        mask_features: Tensor,
        size: Tensor,
    ) -> dict[str, Tensor]:
        """Head ``lvl`` on ``states`` [T, Q, d] (decoder layer ``lvl`` + video queries): class,
        boxes from the layer's input references, masks with the references after the layer.
        Time-first tensors [T, 1, Q, ...]."""
        reference = out.init_reference if lvl == 0 else out.inter_references[lvl - 1]
        boxes = boxes_from_reference(self.bbox_embed[lvl](states), reference)
        masks = self.mask_head(
            mask_features[None],
            self.controller(states)[None],
            out.inter_references[lvl, ..., :2][None],
            size[None],
        )
        return {
            "pred_is_referred": self.class_embed[lvl](states)[:, None],
            "pred_boxes": boxes[:, None],
            "pred_masks": masks[0][:, None],
        }

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
