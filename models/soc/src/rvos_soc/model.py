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
the caller (rvos_core.text reproduces upstream's tokenizer call); the heads of decoder layers 1..L-1
are not computed (upstream computes and discards them in eval); ``lvf`` (text attending to the
/32 level, whose mean feeds only the training loss) runs only when ``with_text_feature=True``
(its weights always load); only the competition code path (box refinement, ``text_refer_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rvos_core.layers import (
    MLP,
    DeformableTransformer,
    DynamicMaskHead,
    Joiner,
    MaskedBackbone,
    PositionEmbeddingSine1D,
    PositionEmbeddingSine2D,
    TemporalQueryModule,
    VisionLanguageFusion,
    build_video_swin,
    input_projections,
    maps_to_tokens,
)
from rvos_core.layers.video_text import (
    TextFeatures,
    VideoFeatures,
    boxes_from_reference,
    encode_text_features,
    encode_video_features,
    fuse_level,
)
from rvos_core.text import FeatureResizer, build_text_encoder
from rvos_soc.config import SOCConfig
from rvos_soc.spatial_decoder import FPNSpatialDecoder

# Upstream builds the text projection's dropout with 0.1 (inactive in eval).
TXT_PROJ_DROPOUT = 0.1


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


class SOC(nn.Module):
    """The competition SOC (see the module docstring)."""

    def __init__(self, *, config: SOCConfig):
        super().__init__()
        self.config = config
        tc, vc = config.transformer, config.vita
        d = tc.d_model
        body = build_video_swin(config.backbone)
        self.backbone = Joiner(
            MaskedBackbone(body), PositionEmbeddingSine2D(num_pos_feats=d // 2, normalize=True)
        )
        self.input_proj = input_projections(
            in_channels=body.num_channels[1:],
            hidden_dim=d,
            num_feature_levels=tc.num_feature_levels,
        )
        self.transformer = DeformableTransformer(
            d_model=d,
            nhead=tc.nheads,
            num_encoder_layers=tc.enc_layers,
            num_decoder_layers=tc.dec_layers,
            dim_feedforward=tc.dim_feedforward,
            dropout=tc.dropout,
            num_feature_levels=tc.num_feature_levels,
            dec_n_points=tc.dec_n_points,
            enc_n_points=tc.enc_n_points,
        )
        self.class_embed = nn.ModuleList(
            nn.Linear(d, config.num_classes) for _ in range(tc.dec_layers)
        )
        self.bbox_embed = nn.ModuleList(
            MLP(input_dim=d, hidden_dim=d, output_dim=4, num_layers=3) for _ in range(tc.dec_layers)
        )
        self.transformer.decoder.bbox_embed = self.bbox_embed  # iterative refinement (stored twice)
        self.text_encoder = build_text_encoder(config.text)
        self.text_pos = PositionEmbeddingSine1D(num_pos_feats=d, normalize=True)
        self.query_embed = nn.Embedding(tc.num_queries, d)
        self.spatial_decoder = FPNSpatialDecoder(
            context_dim=d,
            fpn_dims=[d, d, body.num_channels[0]],
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
        self.txt_proj = FeatureResizer(
            in_features=config.text.hidden_size, out_features=d, dropout=TXT_PROJ_DROPOUT
        )
        self.mask_head = DynamicMaskHead(
            in_channels=config.mask_kernels_dim,
            channels=config.dynamic_mask_channels,
            num_layers=config.controller_layers,
            rel_coord=config.rel_coord,
        )
        self.controller = MLP(
            input_dim=d, hidden_dim=d, output_dim=self.mask_head.num_gen_params, num_layers=3
        )

    def encode_video(self, frames: Tensor) -> VideoFeatures:
        """frames: [T, 3, H, W] normalised (one unpadded video). Backbone, positions and input
        projections (text-independent: reused by every expression of the video)."""
        return encode_video_features(self.backbone, self.input_proj, frames)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        """input_ids, attention_mask: int64 [1, L] from upstream's tokenizer call."""
        return encode_text_features(self.text_encoder, self.txt_proj, input_ids, attention_mask)

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
        words = text.words.transpose(0, 1)  # [L, 1, d]
        text_pos = self.text_pos(text.pad_mask).permute(2, 0, 1)
        srcs = [fuse_level(self.vlf, x, words, text.pad_mask, text_pos) for x in video.projected]
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

    def forward(
        self,
        frames: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        size: Tensor,
        *,
        with_text_feature: bool = False,
    ) -> SOCOutput:
        """One video [T, 3, H, W] and one expression (token ids [1, L]); see ``decode``."""
        return self.decode(
            self.encode_video(frames),
            self.encode_text(input_ids, attention_mask),
            size,
            with_text_feature=with_text_feature,
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
