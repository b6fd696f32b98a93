"""MUTR: a unified temporal transformer for referring video object segmentation.

Paper: Yan, Zhang, Guo, Wang, Zhu, Li, Shen, Qiao, Gao, Li, "Referred by Multi-Modality: A Unified
Temporal Transformer for Video Object Segmentation", AAAI 2024. Upstream: ``MUTR/models/mutr.py``
(with ``models/mti.py``, ``models/segmentation.py``: ``MTA``, ``MTALayer``,
``VisionLanguageFusionModule``, ``CrossModalFPNDecoder``) in RobertLuo1/iccv2023_RVOS_Challenge @
c538b0dca85da0719b32ea45253f8b3077defea6 (the competition copy; its model code equals
OpenGVLab/MUTR apart from the text-encoder path), competition configuration
``--with_box_refine --binary --freeze_text_encoder --backbone video_swin_b_p4w7``.

State-dict keys are upstream's: ReferFormer's (``backbone.0.body.*``, ``input_proj``,
``text_encoder``, ``resizer``, ``fusion_module``, ``transformer``, ``query_embed``,
``class_embed``, ``bbox_embed`` (also stored as ``transformer.decoder.bbox_embed``),
``pixel_decoder``, ``controller``) plus ``MTA.layers.0`` and ``mti``.

What differs from ReferFormer (``parity/mutr/README.md``):
1. the early text-vision fusion adds the attended text to the visual tokens (ReferFormer
   multiplies);
2. MTA: one MTALayer, applied once per transformer level with the same weights, updates the word
   features by attending to the clip's un-fused projected level; token 0 of the result seeds the
   decoder's content queries (the RoBERTa pooler output is computed but unused); the pixel decoder
   still reads the original words;
3. ``mti`` (rvos_nn.layers.TemporalQueryModule, windows of 4 frames, shifted on odd encoder
   layers, learned ``query_feat``) turns the last decoder layer's per-frame queries into video
   queries;
4. the heads upstream's eval path really uses: because ``mti`` returns a single layer in eval,
   the prediction loop runs for layer 0 only: ``class_embed.0`` and the ``controller`` on the
   video queries (the same on every frame), ``bbox_embed.0`` on the FIRST decoder layer's states
   with the initial references, and the masks' relative coordinates from the references after
   decoder layer 0. Heads 1..L-1 are used in training only.

Differences from upstream:
- one video per call; the forward is split into the text-independent ``encode_video`` and
  ``decode``, so several expressions of a video reuse one ``encode_video``;
- the token ids come from the caller (rvos_nn.text reproduces upstream's tokenizer call);
- the class head and the controller run once on the video queries and are broadcast over the
  frames (upstream repeats the queries over time first, which is correct for batch 1 only); the
  per-frame scores are therefore exactly constant, as upstream's are for batch 1;
- the values upstream hard-codes (resizer input 768, MTA and MTI feed-forward 2048, MTI window,
  layers and heads) are configuration fields.

Training (``layer_outputs``, upstream's train-mode forward): ``mti`` runs on every decoder layer's
per-frame states (dropout 0.2 active, no shifted windows) and head ``l`` reads layer ``l``'s video
queries, states and references; the last layer is the output, layers 0..L-2 the ``aux_outputs``.
Differences: one clip per call (rvos_nn.training.forward_clips runs a batch clip by clip; nothing
couples clips); upstream's batch path is only right for batch 1 (``mti`` reshapes
[L, T, B, ...] as [L * B, T, ...], and the video queries are tiled over ``B * T`` rows so that clip
b's frame t reads clip (b * T + t) mod B's queries), while each clip here reads its own, which is
upstream's value for batch 1 (MUTR's ``--batch_size 2`` mixes clips upstream).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

from rvos_mutr.config import MUTRConfig
from rvos_nn.layers import TemporalQueryModule, TransformerOutput, maps_to_tokens
from rvos_nn.layers.video_text import (
    LanguageQueryModel,
    TextFeatures,
    VideoFeatures,
    boxes_from_reference,
)


@dataclass(frozen=True)
class MUTROutput:
    """pred_logits [1, T, Q, K] (the same on every frame), pred_boxes [1, T, Q, 4] (cx, cy, w, h
    in 0..1, from decoder layer 0), pred_masks [1, T, Q, h, w] (logits at stride 4 of the input),
    reference_points [1, T, Q, 2] (the last decoder layer's input references)."""

    pred_logits: Tensor
    pred_boxes: Tensor
    pred_masks: Tensor
    reference_points: Tensor


class MTALayer(nn.Module):
    """Words attend to a clip's visual tokens; residual + LayerNorm; ReLU FFN; residual +
    LayerNorm. Keys ``multihead_attn``, ``norm1``, ``linear1``, ``linear2``, ``norm2``."""

    def __init__(self, *, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self, words: Tensor, memory: Tensor, memory_key_padding_mask: Tensor, query_pos: Tensor
    ) -> Tensor:
        """words, query_pos: [L, B, C]; memory: [S, B, C] (no position);
        memory_key_padding_mask: bool [B, S]. Returns [L, B, C]."""
        attended = self.multihead_attn(
            words + query_pos,
            memory,
            memory,
            key_padding_mask=memory_key_padding_mask,
            need_weights=False,
        )[0]
        words = self.norm1(words + self.dropout1(attended))
        ffn = self.linear2(self.dropout2(F.relu(self.linear1(words))))
        return self.norm2(words + self.dropout3(ffn))


class MTA(nn.Module):
    """Multi-scale temporal aggregation: a stack of MTALayers (``layers.i``)."""

    def __init__(self, *, num_layers: int, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.layers = nn.ModuleList(
            MTALayer(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward)
            for _ in range(num_layers)
        )

    def forward(
        self, words: Tensor, memory: Tensor, memory_key_padding_mask: Tensor, query_pos: Tensor
    ) -> Tensor:
        """See MTALayer.forward."""
        for layer in self.layers:
            words = layer(words, memory, memory_key_padding_mask, query_pos)
        return words


class MUTR(LanguageQueryModel):
    """The competition MUTR (see the module docstring): ReferFormer's modules with additive early
    fusion, plus ``MTA`` and ``mti``."""

    def __init__(self, *, config: MUTRConfig):
        super().__init__(config=config, combine="add")
        d = config.hidden_dim
        self.MTA = MTA(
            num_layers=config.mta_layers,
            d_model=d,
            nhead=config.mta_heads,
            dim_feedforward=config.mta_dim_feedforward,
        )
        self.mti = TemporalQueryModule(
            d_model=d,
            num_frame_queries=config.num_queries,
            num_queries=config.num_queries,
            nheads=config.mti_nheads,
            dim_feedforward=config.mti_dim_feedforward,
            enc_layers=config.mti_enc_layers,
            dec_layers=config.mti_dec_layers,
            window_size=config.mti_window_size,
            dropout=config.mti_dropout,
            learned_query_feat=True,
        )

    def sentence_feature(self, video: VideoFeatures, words: Tensor, text_pos: Tensor) -> Tensor:
        """MTA over the un-fused projected levels, coarsest last; token 0 of the result [1, d].

        words, text_pos: [L, 1, d] sequence-first."""
        for level, mask in zip(video.projected, video.level_masks, strict=True):
            words = self.MTA(words, maps_to_tokens(level, 1), mask.reshape(1, -1), text_pos)
        return words[0]

    def decode(self, video: VideoFeatures, text: TextFeatures, size: Tensor) -> MUTROutput:
        """Everything that depends on the text, as upstream's eval path (the module docstring,
        point 4). size: (H, W) of the model input (int64 [2])."""
        out = self._transformer(video, text)
        video_queries = self.mti(out.hs[-1][:, None])[0]  # [Q, d]
        heads = self._heads(out, 0, video_queries, self.mask_features(video, text, out), size)
        return MUTROutput(**heads, reference_points=out.inter_references[-2, ..., :2][None])

    def layer_outputs(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor
    ) -> list[dict[str, Tensor]]:
        """Upstream's training predictions, one dict per decoder layer (first to last; keys as
        MUTROutput's first three, batch axis 1): ``mti`` turns each layer's per-frame states into
        that layer's video queries (unshifted windows in training mode), and head ``l`` reads
        layer ``l``. size: (H, W) of the clip (int64 [2])."""
        out = self._transformer(video, text)
        video_queries = self.mti(out.hs.transpose(0, 1))  # [L, Q, d]
        mask_features = self.mask_features(video, text, out)
        return [
            self._heads(out, lvl, queries, mask_features, size)
            for lvl, queries in enumerate(video_queries)
        ]

    def _transformer(self, video: VideoFeatures, text: TextFeatures) -> TransformerOutput:
        """Early fusion, MTA's sentence feature as every frame's content queries, transformer."""
        t, q = video.num_frames, self.config.num_queries
        srcs, words, text_pos = self.fuse_levels(self.fusion_module, video, text)
        sentence = self.sentence_feature(video, words, text_pos)
        tgt = sentence[:, None, :].expand(t, q, -1)
        return self.transformer(
            srcs, video.level_masks, video.level_pos, tgt, self.query_embed.weight
        )

    def _heads(
        self,
        out: TransformerOutput,
        lvl: int,
        video_queries: Tensor,
        mask_features: Tensor,
        size: Tensor,
    ) -> dict[str, Tensor]:
        """Head ``lvl``: class and mask kernels from the video queries [Q, d] (the same on every
        frame), boxes from decoder layer ``lvl``'s states and its input references, the masks'
        relative coordinates from the references after layer ``lvl``. Tensors [1, T, Q, ...]."""
        t = out.hs.shape[1]
        reference = out.init_reference if lvl == 0 else out.inter_references[lvl - 1]
        logits = self.class_embed[lvl](video_queries).expand(t, -1, -1)
        boxes = boxes_from_reference(self.bbox_embed[lvl](out.hs[lvl]), reference)
        params = self.controller(video_queries).expand(t, -1, -1)
        masks = self.mask_head(
            mask_features[None], params[None], out.inter_references[lvl, ..., :2][None], size[None]
        )
        return {"pred_logits": logits[None], "pred_boxes": boxes[None], "pred_masks": masks}


def build(config: MUTRConfig) -> MUTR:
    """MUTR with random weights (works under ``torch.device("meta")``)."""
    return MUTR(config=config)
