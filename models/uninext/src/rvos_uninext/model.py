"""UNINEXT, the referring-video-object-segmentation path of the ``video_joint`` models.

Paper: Yan et al., "Universal Instance Perception as Object Discovery and Retrieval" (UNINEXT,
CVPR 2023). Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d, folder ``UNINEXT/``
(``projects/UNINEXT/uninext/uninext_vid.py`` ``UNINEXT_VID``; ``models/ddetrs_vid_dn.py``
``DDETRSegmUniVIDDN`` with ``models/ddetrs_dn.py::coco_inference``; ``models/deformable_detr/``),
model code identical to MasterBin-IIAU/UNINEXT. Specified by shared/parity/uninext/model/README.md.

Module tree and key names are upstream's (``detr.detr.*`` detector, ``detr.{controller,mask_head,
reid_embed_head}``, ``text_encoder.body.model.*`` BERT), so released checkpoints load without a
key map. Parts upstream stores but the RVOS path never runs are not built; ``checkpoint_rules``
drops their keys by name (see ``UNUSED_KEYS``).

Per frame (frames are independent): backbone -> input projections -> encoder with early VL fusion
-> two-stage DINO decoder -> last-layer heads (VL-aligned class logits against the mean of the fused
text tokens, boxes, IoU, reid embedding) -> dynamic mask head on the encoder memory. The
text-independent part (``encode_frames``) is computed once per video and reused for every
expression.

Training (``rvos_uninext.training``) runs the same modules on (key, reference) frame pairs, with
the denoising queries of ``detr.resizer`` (the dynamic label encoder) and every decoder layer's heads.

Differences: no SOT/VOS template branch or tracker; at inference the heads other than the last
decoder layer's are loaded but not run (upstream computes only the last layer at inference too).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rvos_nn.checkpoint import KeyRule
from rvos_nn.layers.box import inverse_sigmoid
from rvos_nn.layers.deformable_transformer import input_projections
from rvos_nn.layers.mlp import MLP
from rvos_nn.layers.position import PositionEmbeddingSine2D
from rvos_nn.text import FeatureResizer, build_text_encoder
from rvos_uninext.config import UninextConfig
from rvos_uninext.convnext import ConvNeXt
from rvos_uninext.heads import DynamicMaskConv, MaskHeadSmallConv, StillClassifier, VLAlign
from rvos_uninext.preprocess import FrameBatch
from rvos_uninext.transformer import (
    DinoVLTransformer,
    Levels,
    ReidHead,
    TransformerOutput,
    average_text,
    decoder_layer,
)
from rvos_uninext.vit import ViT

# Keys of a UNINEXT checkpoint that the RVOS path never reads; dropped by name when loading.
UNUSED_KEYS = (
    KeyRule(
        name="template-backbone",
        pattern=r"detr\.detr\.ref_backbone\..+",
        reason="second backbone (4-channel input) for SOT/VOS templates",
    ),
    KeyRule(name="sot-fuser", pattern=r"detr\.sot_fuser\..+", reason="SOT feature fuser"),
    KeyRule(
        name="adjust-layer", pattern=r"detr\.adjust_layer\..+", reason="SOT template projection"
    ),
    KeyRule(
        name="criterion-buffer", pattern=r"criterion\._iter", reason="loss-module iteration counter"
    ),
)


class VisualFeatures(NamedTuple):
    """Text-independent input of the transformer, per level l = 0..3 (strides 8, 16, 32, 64):
    srcs [N, C, h_l, w_l] after the input projections, masks [N, h_l, w_l] (True = padding),
    poses [N, C, h_l, w_l] sine position embeddings; image_sizes: (h, w) of each resized frame."""

    srcs: list[Tensor]
    masks: list[Tensor]
    poses: list[Tensor]
    image_sizes: tuple[tuple[int, int], ...]


class FrameOutputs(NamedTuple):
    """Last-decoder-layer predictions per frame: pred_logits [N, Q, 1], pred_boxes [N, Q, 4]
    (cxcywh in [0, 1]), pred_boxious [N, Q, 1], reference_points [N, Q, 2] (the second-last
    decoder references, centres used by the mask head), pred_inst_embed [N, Q, C] (None unless
    asked for). ``states`` [N, Q, C], ``memory`` and ``levels`` are what the mask branch reads."""

    pred_logits: Tensor
    pred_boxes: Tensor
    pred_boxious: Tensor
    reference_points: Tensor
    pred_inst_embed: Tensor | None
    states: Tensor
    memory: Tensor
    levels: Levels
    image_sizes: tuple[tuple[int, int], ...]


class MaskedBackbone(nn.Module):
    """Backbone + padding masks nearest-resized to each output (upstream ``MaskedBackbone``)."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.backbone = trunk

    def forward(self, tensors: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """[N, 3, H, W], [N, H, W] -> [(features, mask)] for res3, res4, res5."""
        outputs = self.backbone(tensors)
        return [
            (outputs[name], _resize_mask(mask, outputs[name].shape[-2:]))
            for name in sorted(outputs)
        ]


class Detector(nn.Module):
    """Upstream ``DeformableDETRDINO`` (keys ``detr.detr.*``): backbone, input projections,
    transformer and the per-layer heads (``class_embed.{0..L-1}`` VL-aligned, ``class_embed.L`` the
    still classifier for encoder proposals, ``bbox_embed.{0..L}``, ``iou_head.{0..L-1}``)."""

    def __init__(self, config: UninextConfig) -> None:
        super().__init__()
        trunk = (
            ViT(config=config.backbone)
            if config.backbone_kind == "vit"
            else ConvNeXt(config=config.backbone)
        )
        self.backbone = nn.ModuleList([MaskedBackbone(trunk)])
        self.position = PositionEmbeddingSine2D(
            num_pos_feats=config.hidden_dim // 2, normalize=True
        )
        channels = trunk.out_channels
        self.input_proj = input_projections(
            in_channels=[channels["res3"], channels["res4"], channels["res5"]],
            hidden_dim=config.hidden_dim,
            num_feature_levels=config.num_feature_levels,
        )
        self.transformer = DinoVLTransformer(
            d_model=config.hidden_dim,
            nhead=config.nheads,
            num_encoder_layers=config.enc_layers,
            num_decoder_layers=config.dec_layers,
            dim_feedforward=config.dim_feedforward,
            num_feature_levels=config.num_feature_levels,
            enc_n_points=config.enc_n_points,
            dec_n_points=config.dec_n_points,
            num_proposals=config.num_proposals,
            lang_dim=config.lang_dim,
            vl_hidden_dim=config.vl_hidden_dim,
            num_vl_layers=config.num_vl_layers,
        )
        d, layers = config.hidden_dim, config.dec_layers
        self.class_embed = nn.ModuleList(
            [
                *(VLAlign(hidden_dim=d, lang_dim=config.lang_dim) for _ in range(layers)),
                StillClassifier(hidden_dim=d),
            ]
        )
        self.bbox_embed = nn.ModuleList(
            MLP(input_dim=d, hidden_dim=d, output_dim=4, num_layers=3) for _ in range(layers + 1)
        )
        self.iou_head = nn.ModuleList(nn.Linear(d, 1) for _ in range(layers))
        self.transformer.decoder.bbox_embed = self.bbox_embed
        self.transformer.decoder.class_embed = self.class_embed

    def encode_frames(self, batch: FrameBatch) -> VisualFeatures:
        """Backbone, input projections, masks and position embeddings of every level."""
        features = self.backbone[0](batch.tensors, batch.mask)
        srcs = [
            proj(f) for proj, (f, _) in zip(self.input_proj[: len(features)], features, strict=True)
        ]
        masks = [m for _, m in features]
        extra = features[-1][0]
        for proj in self.input_proj[len(features) :]:
            extra = proj(extra)
            srcs.append(extra)
            masks.append(_resize_mask(masks[0], extra.shape[-2:]))
        poses = [self.position(m).to(s.dtype) for s, m in zip(srcs, masks, strict=True)]
        return VisualFeatures(srcs, masks, poses, batch.image_sizes)


class SegmentationDetector(nn.Module):
    """Upstream ``DDETRSegmUniVIDDN`` (keys ``detr.*``): detector + CondInst mask branch + reid
    head + ``resizer``, the denoising queries' label encoder (pooled text -> content; training)."""

    def __init__(self, config: UninextConfig) -> None:
        super().__init__()
        d = config.hidden_dim
        self.detr = Detector(config)
        self.resizer = FeatureResizer(in_features=config.lang_dim, out_features=d, dropout=0.0)
        self.dynamic = DynamicMaskConv(
            in_channels=d // 32,
            channels=8,
            num_layers=config.ctrl_layers,
            feat_stride=8,
            out_stride=config.mask_stride,
        )
        self.controller = MLP(
            input_dim=d, hidden_dim=d, output_dim=self.dynamic.num_gen_params, num_layers=3
        )
        self.mask_head = MaskHeadSmallConv(dim=d)
        reid_layer = decoder_layer(
            d_model=d,
            d_ffn=config.dim_feedforward,
            nhead=config.nheads,
            levels=config.num_feature_levels,
            points=config.dec_n_points,
        )
        self.reid_embed_head = nn.ModuleList(
            [
                ReidHead(layer=reid_layer, num_layers=config.reid_layers, d_model=d),
                MLP(input_dim=d, hidden_dim=d, output_dim=d, num_layers=3),
            ]
        )


class Uninext(nn.Module):
    """UNINEXT_VID restricted to RVOS inference (keys ``detr.*`` and ``text_encoder.body.model.*``)."""

    def __init__(self, config: UninextConfig) -> None:
        super().__init__()
        self.config = config
        self.detr = SegmentationDetector(config)
        body = nn.Module()
        body.model = build_text_encoder(config.text)
        self.text_encoder = nn.Sequential(OrderedDict(body=body))

    def encode_frames(self, batch: FrameBatch) -> VisualFeatures:
        return self.detr.detr.encode_frames(batch)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token ids / mask [B, L] -> BERT's last hidden layer [B, L, lang_dim]."""
        model = self.text_encoder.body.model
        return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def decode(
        self, visual: VisualFeatures, text: Tensor, text_mask: Tensor, *, with_reid: bool = False
    ) -> FrameOutputs:
        """Everything after the backbone but the masks, for N frames and one expression.

        Args:
            visual: N frames' features (``encode_frames``).
            text: [1 or N, L, lang_dim] BERT output; text_mask [1 or N, L] (1 = token). Every frame
                fuses its own copy (upstream deep-copies the text features per frame).
            with_reid: also run the (output-neutral) deformable reid head.

        Runs in float32 with autocast off, as upstream's transformer does under autocast.
        """
        n = visual.srcs[0].shape[0]
        text, text_mask = text.expand(n, -1, -1), text_mask.expand(n, -1)
        with torch.autocast(device_type=text.device.type, enabled=False):
            return self._decode_fp32(visual, text.float(), text_mask, with_reid)

    def _decode_fp32(
        self, visual: VisualFeatures, text: Tensor, text_mask: Tensor, with_reid: bool
    ) -> FrameOutputs:
        det = self.detr.detr
        srcs, poses = [s.float() for s in visual.srcs], [p.float() for p in visual.poses]
        out = det.transformer(srcs, visual.masks, poses, text, text_mask)
        last = self.config.dec_layers - 1
        hs = out.hs[last]
        pooled = average_text(out.text, text_mask).unsqueeze(1)
        logits = det.class_embed[last](hs, pooled)
        boxes = (
            det.bbox_embed[last](hs) + inverse_sigmoid(out.inter_references[last - 1])
        ).sigmoid()
        ious = det.iou_head[last](hs)
        embed = (
            self.reid_embeddings(out.hs[-1], out.inter_references[-1], out.memory, out.levels)
            if with_reid
            else None
        )
        reference = out.inter_references[-2][..., :2]
        return FrameOutputs(
            logits, boxes, ious, reference, embed, hs, out.memory, out.levels, visual.image_sizes
        )

    def reid_embeddings(self, hs: Tensor, boxes: Tensor, memory: Tensor, levels: Levels) -> Tensor:
        """Decoder states [N, Q, C] and boxes [N, Q, 4] -> reid embeddings [N, Q, C]."""
        head, mlp = self.detr.reid_embed_head
        return mlp(head(hs, boxes, memory, levels))

    def mask_features(self, out: FrameOutputs | TransformerOutput) -> Tensor:
        """Stride-8 mask features [N, hidden / 32, h/8, w/8] from the encoder memory (/8, /16, /32)."""
        n, _, c = out.memory.shape
        maps, start = [], 0
        for h, w in out.levels.shapes[:3]:
            maps.append(
                out.memory[:, start : start + h * w].reshape(n, h, w, c).permute(0, 3, 1, 2)
            )
            start += h * w
        return self.detr.mask_head(maps)

    def predict_masks(self, out: FrameOutputs, queries: Tensor | None = None) -> Tensor:
        """Mask logits [N, K, h/4, w/4] at stride 4 of the padded input for the queries [N, K]
        (default: all Q)."""
        with torch.autocast(device_type=out.memory.device.type, enabled=False):
            features = self.mask_features(out)
            sizes = [[w, h] for h, w in out.image_sizes]
            scale = torch.tensor(sizes, dtype=out.reference_points.dtype, device=out.memory.device)
            points = out.reference_points * scale[:, None, :]
            states = out.states
            if queries is not None:
                states = torch.gather(
                    states, 1, queries[..., None].expand(-1, -1, states.shape[-1])
                )
                points = torch.gather(points, 1, queries[..., None].expand(-1, -1, 2))
            return self.detr.dynamic(features, self.detr.controller(states), points)

    def forward(
        self,
        batch: FrameBatch,
        input_ids: Tensor,
        attention_mask: Tensor,
        *,
        with_reid: bool = True,
    ) -> tuple[FrameOutputs, Tensor]:
        """Frames [N] and one tokenized expression [1, L] -> (outputs, every query's mask logits)."""
        text = self.encode_text(input_ids, attention_mask)
        out = self.decode(self.encode_frames(batch), text, attention_mask, with_reid=with_reid)
        return out, self.predict_masks(out)


def build(config: UninextConfig) -> Uninext:
    """The RVOS model with random weights (works under ``torch.device("meta")``)."""
    return Uninext(config)


def _resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Nearest resize of a bool padding mask [N, H, W] -> [N, h, w] (upstream's float round trip)."""
    return F.interpolate(mask[None].float(), size=tuple(size)).to(torch.bool)[0]
