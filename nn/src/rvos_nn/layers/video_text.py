"""What the Video-Swin RVOS models (ReferFormer, MUTR, SOC) share: their common modules, the
text-independent and text stages, and ReferFormer's architecture, which MUTR extends.

Upstream: the first part of ``forward`` in ``ReferFormer/models/referformer.py`` and
``MUTR/models/mutr.py`` (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d): backbone, the 1x1 input
projections of the stride 8 / 16 / 32 stages, the extra stride-64 level from the raw last stage,
their masks and sine positions; the RoBERTa words and pooled sentence through ``resizer``; the
early vision-language fusion of one level; the box of a decoder layer from its reference.

Differences: one video per call (upstream's inference batch), split into a text-independent part
(``encode_video_features``, reused by every expression of a video) and the text part. A video
padded into a training batch comes with its padding mask (upstream's ``NestedTensor`` mask of that
video): the backbone's stage masks and positions, the extra level's mask and every key padding
downstream follow it; without one the video is unpadded (an all-False mask, the inference case).

``VideoTextModel`` builds the modules the three models have under the same names (SOC:
``soc_test/models/mttr.py``, same commit), so their checkpoints load without a key map, and runs
the two stages; ``LanguageQueryModel`` is ReferFormer's whole module set, which MUTR keeps and
adds to. Each model's ``decode`` (everything that depends on the text) stays in its package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

from rvos_nn.layers.backbone import Joiner, MaskedBackbone, resize_mask
from rvos_nn.layers.box import inverse_sigmoid
from rvos_nn.layers.cross_modal_fpn import (
    CrossModalFPNDecoder,
    VisionLanguageFusion,
    maps_to_tokens,
    tokens_to_maps,
)
from rvos_nn.layers.deformable_transformer import (
    DeformableTransformer,
    TransformerOutput,
    input_projections,
)
from rvos_nn.layers.mask_head import DynamicMaskHead
from rvos_nn.layers.mlp import MLP
from rvos_nn.layers.position import PositionEmbeddingSine1D, PositionEmbeddingSine2D
from rvos_nn.layers.video_swin import VideoSwinConfig, build_video_swin
from rvos_nn.text import FeatureResizer, TextEncoderConfig, build_text_encoder

if TYPE_CHECKING:
    from rvos_nn.language_query import LanguageQueryConfig

# Dropout of the text projection (``resizer`` / ``txt_proj``) upstream builds (inactive in eval).
TEXT_PROJECTION_DROPOUT = 0.1


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
    backbone: Joiner, input_proj: nn.ModuleList, frames: Tensor, mask: Tensor | None = None
) -> VideoFeatures:
    """frames: [T, 3, H, W] normalised, one video; mask: bool [T, H, W], True on the zero padding
    of a batch (None: unpadded). Backbone, positions and input projections: ``input_proj[:-1]`` on
    stages 2..n, ``input_proj[-1]`` on the raw last stage (its mask resized from ``mask``)."""
    if mask is None:
        t, _, h, w = frames.shape
        mask = torch.zeros((t, h, w), dtype=torch.bool, device=frames.device)
    out = backbone(frames[None], mask[None])
    stages = out.features[1:]
    projected = [proj(x) for proj, x in zip(input_proj[:-1], stages, strict=True)]
    extra = input_proj[-1](out.features[-1])
    extra_mask = resize_mask(mask, extra.shape[-2:])
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


class DecoderSettings(Protocol):
    """The deformable transformer's values under the names both config layouts provide (SOC's
    ``DeformTransformer`` section, ``LanguageQueryConfig``)."""

    @property
    def d_model(self) -> int: ...

    nheads: int
    enc_layers: int
    dec_layers: int
    dim_feedforward: int
    dropout: float
    num_feature_levels: int
    dec_n_points: int
    enc_n_points: int
    num_queries: int


class VideoTextModel(nn.Module):
    """Base of the Video-Swin RVOS models: shared modules (upstream names) and the two stages.

    Subclasses call the ``add_*`` builders in ``__init__`` and define
    ``decode(video, text, size, **options)`` (inference) and ``layer_outputs(video, text, size)``
    (training, rvos_nn.training.forward_clips); ``encode_video`` runs once per video (reused by
    every expression), ``encode_text`` once per expression. ``TEXT_PROJECTION`` names the text
    projection (``resizer`` upstream in ReferFormer and MUTR, ``txt_proj`` in SOC).
    """

    TEXT_PROJECTION: ClassVar[str] = "resizer"

    def add_encoders(
        self,
        *,
        backbone: VideoSwinConfig,
        text: TextEncoderConfig,
        d_model: int,
        num_feature_levels: int,
    ) -> tuple[int, ...]:
        """``backbone`` (Video-Swin + masks + 2-D sine positions), ``input_proj``,
        ``text_encoder``, the text projection and ``text_pos``; returns the stage channels."""
        body = build_video_swin(backbone)
        self.backbone = Joiner(
            MaskedBackbone(body),
            PositionEmbeddingSine2D(num_pos_feats=d_model // 2, normalize=True),
        )
        self.input_proj = input_projections(
            in_channels=body.num_channels[1:],
            hidden_dim=d_model,
            num_feature_levels=num_feature_levels,
        )
        self.text_encoder = build_text_encoder(text)
        projection = FeatureResizer(
            in_features=text.hidden_size, out_features=d_model, dropout=TEXT_PROJECTION_DROPOUT
        )
        self.add_module(self.TEXT_PROJECTION, projection)
        self.text_pos = PositionEmbeddingSine1D(num_pos_feats=d_model, normalize=True)
        return tuple(body.num_channels)

    def add_decoder(self, settings: DecoderSettings, *, num_classes: int) -> None:
        """``transformer``, ``query_embed`` and per decoder layer ``class_embed`` / ``bbox_embed``;
        box refinement: the decoder holds ``bbox_embed`` too (a checkpoint stores it twice)."""
        d = settings.d_model
        self.transformer = DeformableTransformer(
            d_model=d,
            nhead=settings.nheads,
            num_encoder_layers=settings.enc_layers,
            num_decoder_layers=settings.dec_layers,
            dim_feedforward=settings.dim_feedforward,
            dropout=settings.dropout,
            num_feature_levels=settings.num_feature_levels,
            dec_n_points=settings.dec_n_points,
            enc_n_points=settings.enc_n_points,
        )
        self.query_embed = nn.Embedding(settings.num_queries, d)
        self.class_embed = nn.ModuleList(
            nn.Linear(d, num_classes) for _ in range(settings.dec_layers)
        )
        self.bbox_embed = nn.ModuleList(
            MLP(input_dim=d, hidden_dim=d, output_dim=4, num_layers=3)
            for _ in range(settings.dec_layers)
        )
        self.transformer.decoder.bbox_embed = self.bbox_embed

    def add_mask_head(
        self, *, in_channels: int, channels: int, num_layers: int, rel_coord: bool, d_model: int
    ) -> None:
        """``mask_head`` (dynamic convolutions) and ``controller``, the MLP that generates their
        parameters from a query."""
        self.mask_head = DynamicMaskHead(
            in_channels=in_channels, channels=channels, num_layers=num_layers, rel_coord=rel_coord
        )
        self.controller = MLP(
            input_dim=d_model,
            hidden_dim=d_model,
            output_dim=self.mask_head.num_gen_params,
            num_layers=3,
        )

    def encode_video(self, frames: Tensor, mask: Tensor | None = None) -> VideoFeatures:
        """frames: [T, 3, H, W] normalised, one video; mask: bool [T, H, W], True on batch
        padding (None: unpadded). Backbone, positions and input projections (text-independent:
        reused by every expression of the video)."""
        return encode_video_features(self.backbone, self.input_proj, frames, mask)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        """input_ids, attention_mask: int64 [1, L] from upstream's tokenizer call."""
        projection = self.get_submodule(self.TEXT_PROJECTION)
        return encode_text_features(self.text_encoder, projection, input_ids, attention_mask)

    def fuse_levels(
        self, fusion: VisionLanguageFusion, video: VideoFeatures, text: TextFeatures
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """Early fusion of every projected level with the words.

        Returns the fused levels [T, d, h_l, w_l], the words [L, 1, d] and their sine positions
        [L, 1, d] (sequence-first)."""
        words = text.words.transpose(0, 1)
        text_pos = self.text_pos(text.pad_mask).permute(2, 0, 1)
        srcs = [fuse_level(fusion, x, words, text.pad_mask, text_pos) for x in video.projected]
        return srcs, words, text_pos

    def decode(self, video: VideoFeatures, text: TextFeatures, size: Tensor, **options: Any) -> Any:
        """Everything that depends on the text (each model's own)."""
        raise NotImplementedError(f"{type(self).__name__} must define decode")

    def layer_outputs(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor
    ) -> list[dict[str, Tensor]]:
        """Upstream's training predictions of one clip: a dict per decoder layer, first to last,
        each tensor with a batch axis of size 1 (each trainable model's own)."""
        raise NotImplementedError(f"{type(self).__name__} has no training path")

    def forward(
        self,
        frames: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        size: Tensor,
        **options: Any,
    ) -> Any:
        """One video [T, 3, H, W] and one expression (token ids [1, L]); size: (H, W) of the model
        input (int64 [2]); options: the model's ``decode`` options."""
        return self.decode(
            self.encode_video(frames), self.encode_text(input_ids, attention_mask), size, **options
        )


class LanguageQueryModel(VideoTextModel):
    """ReferFormer's modules (upstream names; MUTR keeps them all and adds its own): the shared
    ones, ``fusion_module`` (early vision-language fusion, ``combine`` as the model does it) and
    ``pixel_decoder`` (cross-modal FPN)."""

    def __init__(self, *, config: LanguageQueryConfig, combine: Literal["multiply", "add"]) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        channels = self.add_encoders(
            backbone=config.backbone,
            text=config.text,
            d_model=d,
            num_feature_levels=config.num_feature_levels,
        )
        self.fusion_module = VisionLanguageFusion(
            d_model=d, nhead=config.fusion_heads, combine=combine
        )
        self.add_decoder(config, num_classes=config.num_classes)
        self.pixel_decoder = CrossModalFPNDecoder(
            feature_channels=[channels[0]] + [d] * (len(channels) - 1),
            conv_dim=d,
            mask_dim=config.mask_dim,
            dim_feedforward=config.dim_feedforward,
        )
        self.add_mask_head(
            in_channels=config.mask_dim,
            channels=config.dynamic_mask_channels,
            num_layers=config.controller_layers,
            rel_coord=config.rel_coord,
            d_model=d,
        )

    def mask_features(
        self, video: VideoFeatures, text: TextFeatures, out: TransformerOutput
    ) -> Tensor:
        """The pixel decoder on the stride-4 stage and the encoder memory: [T, mask_dim, h, w]."""
        maps = [video.features[0], *out.memory]
        return self.pixel_decoder(
            maps, video.stage_masks, video.stage_pos, text.words, text.pad_mask, video.num_frames
        )
