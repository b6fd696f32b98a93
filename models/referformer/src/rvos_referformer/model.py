"""ReferFormer: language as queries for referring video object segmentation.

Paper: Wu, Jiang, Sun, Yuan, Luo, "Language as Queries for Referring Video Object Segmentation",
CVPR 2022. Upstream: ``ReferFormer/models/referformer.py`` in RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0dca85da0719b32ea45253f8b3077defea6 (the competition copy; its model code equals
wjn922/ReferFormer apart from the text-encoder path), competition configuration
``--with_box_refine --binary --freeze_text_encoder --backbone video_swin_b_p4w7``.

State-dict keys are upstream's (``backbone.0.body.*``, ``input_proj``, ``text_encoder``,
``resizer``, ``fusion_module``, ``transformer``, ``query_embed``, ``class_embed``, ``bbox_embed``
(also stored as ``transformer.decoder.bbox_embed``), ``pixel_decoder``, ``controller``).

Differences from upstream:
- one video per call (upstream's inference batch); the forward is split into the text-independent
  ``encode_video`` (backbone, input projections, positions) and ``decode`` (text, fusion,
  transformer, heads), so several expressions of a video reuse one ``encode_video``;
- the token ids come from the caller (rvos_core.text reproduces upstream's tokenizer call);
- heads and masks of the intermediate decoder layers (upstream's ``aux_outputs``, used only by the
  training loss) are computed only on request (``with_aux=True``);
- only the competition's code path: box refinement on, no two-stage, four feature levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rvos_core.layers import (
    MLP,
    CrossModalFPNDecoder,
    DeformableTransformer,
    DynamicMaskHead,
    Joiner,
    MaskedBackbone,
    PositionEmbeddingSine1D,
    PositionEmbeddingSine2D,
    TransformerOutput,
    VisionLanguageFusion,
    build_video_swin,
    input_projections,
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
from rvos_referformer.config import ReferFormerConfig


@dataclass(frozen=True)
class ReferFormerOutput:
    """Last decoder layer: pred_logits [1, T, Q, K], pred_boxes [1, T, Q, 4] (cx, cy, w, h in
    0..1), pred_masks [1, T, Q, h, w] (logits at stride 4 of the padded input),
    reference_points [1, T, Q, 2] (the last layer's input references); aux_outputs: the
    earlier layers' {pred_logits, pred_boxes, pred_masks} when requested, else empty."""

    pred_logits: Tensor
    pred_boxes: Tensor
    pred_masks: Tensor
    reference_points: Tensor
    aux_outputs: list[dict[str, Tensor]]


class ReferFormer(nn.Module):
    """The competition ReferFormer (see the module docstring)."""

    def __init__(self, *, config: ReferFormerConfig):
        super().__init__()
        self.config = config
        d = config.hidden_dim
        body = build_video_swin(config.backbone)
        self.backbone = Joiner(
            MaskedBackbone(body), PositionEmbeddingSine2D(num_pos_feats=d // 2, normalize=True)
        )
        self.input_proj = input_projections(
            in_channels=body.num_channels[1:],
            hidden_dim=d,
            num_feature_levels=config.num_feature_levels,
        )
        self.text_encoder = build_text_encoder(config.text)
        self.resizer = FeatureResizer(
            in_features=config.text.hidden_size, out_features=d, dropout=0.1
        )
        self.fusion_module = VisionLanguageFusion(
            d_model=d, nhead=config.fusion_heads, combine="multiply"
        )
        self.text_pos = PositionEmbeddingSine1D(num_pos_feats=d, normalize=True)
        self.transformer = DeformableTransformer(
            d_model=d,
            nhead=config.nheads,
            num_encoder_layers=config.enc_layers,
            num_decoder_layers=config.dec_layers,
            dim_feedforward=config.dim_feedforward,
            dropout=config.dropout,
            num_feature_levels=config.num_feature_levels,
            dec_n_points=config.dec_n_points,
            enc_n_points=config.enc_n_points,
        )
        self.query_embed = nn.Embedding(config.num_queries, d)
        self.class_embed = nn.ModuleList(
            nn.Linear(d, config.num_classes) for _ in range(config.dec_layers)
        )
        self.bbox_embed = nn.ModuleList(
            MLP(input_dim=d, hidden_dim=d, output_dim=4, num_layers=3)
            for _ in range(config.dec_layers)
        )
        self.transformer.decoder.bbox_embed = self.bbox_embed  # iterative refinement (stored twice)
        self.pixel_decoder = CrossModalFPNDecoder(
            feature_channels=[body.num_channels[0]] + [d] * (len(body.num_channels) - 1),
            conv_dim=d,
            mask_dim=config.mask_dim,
            dim_feedforward=config.dim_feedforward,
        )
        self.mask_head = DynamicMaskHead(
            in_channels=config.mask_dim,
            channels=config.dynamic_mask_channels,
            num_layers=config.controller_layers,
            rel_coord=config.rel_coord,
        )
        self.controller = MLP(
            input_dim=d, hidden_dim=d, output_dim=self.mask_head.num_gen_params, num_layers=3
        )

    def encode_video(self, frames: Tensor) -> VideoFeatures:
        """frames: [T, 3, H, W] normalised. Backbone, positions and input projections."""
        return encode_video_features(self.backbone, self.input_proj, frames)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        """input_ids, attention_mask: int64 [1, L] from upstream's tokenizer call."""
        return encode_text_features(self.text_encoder, self.resizer, input_ids, attention_mask)

    def decode(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor, *, with_aux: bool = False
    ) -> ReferFormerOutput:
        """Everything that depends on the text. size: (H, W) of the model input (int64 [2])."""
        t, q = video.num_frames, self.config.num_queries
        words = text.words.transpose(0, 1)
        text_pos = self.text_pos(text.pad_mask).permute(2, 0, 1)
        srcs = [
            fuse_level(self.fusion_module, x, words, text.pad_mask, text_pos)
            for x in video.projected
        ]
        tgt = text.sentence[:, None, :].expand(t, q, -1)
        out = self.transformer(
            srcs, video.level_masks, video.level_pos, tgt, self.query_embed.weight
        )
        layers = range(self.config.dec_layers) if with_aux else [self.config.dec_layers - 1]
        maps = [video.features[0], *out.memory]
        mask_features = self.pixel_decoder(
            maps, video.stage_masks, video.stage_pos, text.words, text.pad_mask, t
        )
        heads = [self._heads(out, lvl, mask_features, size) for lvl in layers]
        last = heads[-1]
        return ReferFormerOutput(
            pred_logits=last["pred_logits"],
            pred_boxes=last["pred_boxes"],
            pred_masks=last["pred_masks"],
            reference_points=out.inter_references[-2, ..., :2][None],
            aux_outputs=heads[:-1],
        )

    def forward(
        self,
        frames: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        size: Tensor,
        *,
        with_aux: bool = False,
    ) -> ReferFormerOutput:
        """One video [T, 3, H, W] and one expression (token ids [1, L]); see ``decode``."""
        return self.decode(
            self.encode_video(frames),
            self.encode_text(input_ids, attention_mask),
            size,
            with_aux=with_aux,
        )

    def _heads(
        self, out: TransformerOutput, lvl: int, mask_features: Tensor, size: Tensor
    ) -> dict[str, Tensor]:
        """Class, box and mask predictions of decoder layer ``lvl`` ([1, T, Q, ...])."""
        hs = out.hs[lvl]
        reference = out.init_reference if lvl == 0 else out.inter_references[lvl - 1]
        boxes = boxes_from_reference(self.bbox_embed[lvl](hs), reference)
        params = self.controller(hs)
        masks = self.mask_head(
            mask_features[None], params[None], out.inter_references[lvl, ..., :2][None], size[None]
        )
        return {
            "pred_logits": self.class_embed[lvl](hs)[None],
            "pred_boxes": boxes[None],
            "pred_masks": masks,
        }


def build(config: ReferFormerConfig) -> ReferFormer:
    """ReferFormer with random weights (works under ``torch.device("meta")``)."""
    return ReferFormer(config=config)
