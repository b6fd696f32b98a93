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
- the token ids come from the caller (rvos_nn.text reproduces upstream's tokenizer call);
- heads and masks of the intermediate decoder layers (upstream's ``aux_outputs``, used only by the
  training loss) are computed only on request (``with_aux=True``);
- only the competition's code path: box refinement on, no two-stage, four feature levels.

Training (``layer_outputs``, upstream's train-mode forward with ``aux_loss``): every decoder
layer's heads and masks, the last layer as the output and layers 0..L-2 as ``aux_outputs``;
dropout as upstream (transformer 0.1, ``resizer`` 0.1, pixel decoder 0.1). A batch runs clip by
clip, each padded with the batch to a multiple of 32 and masked (rvos_nn.training; nothing couples
the clips of a batch, so the values are upstream's batched ones). Not reproduced: the A2D/JHMDB
``valid_indices`` path (one annotated frame per clip).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rvos_nn.layers import TransformerOutput
from rvos_nn.layers.video_text import (
    LanguageQueryModel,
    TextFeatures,
    VideoFeatures,
    boxes_from_reference,
)
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


class ReferFormer(LanguageQueryModel):
    """The competition ReferFormer (see the module docstring); every module is the shared
    ``LanguageQueryModel``'s, with multiplicative early fusion."""

    def __init__(self, *, config: ReferFormerConfig):
        super().__init__(config=config, combine="multiply")

    def decode(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor, *, with_aux: bool = False
    ) -> ReferFormerOutput:
        """Everything that depends on the text. size: (H, W) of the model input (int64 [2])."""
        t, q = video.num_frames, self.config.num_queries
        srcs, _, _ = self.fuse_levels(self.fusion_module, video, text)
        tgt = text.sentence[:, None, :].expand(t, q, -1)
        out = self.transformer(
            srcs, video.level_masks, video.level_pos, tgt, self.query_embed.weight
        )
        layers = range(self.config.dec_layers) if with_aux else [self.config.dec_layers - 1]
        mask_features = self.mask_features(video, text, out)
        heads = [self._heads(out, lvl, mask_features, size) for lvl in layers]
        last = heads[-1]
        return ReferFormerOutput(
            pred_logits=last["pred_logits"],
            pred_boxes=last["pred_boxes"],
            pred_masks=last["pred_masks"],
            reference_points=out.inter_references[-2, ..., :2][None],
            aux_outputs=heads[:-1],
        )

    def layer_outputs(
        self, video: VideoFeatures, text: TextFeatures, size: Tensor
    ) -> list[dict[str, Tensor]]:
        """Upstream's training predictions, one dict per decoder layer (first to last):
        ``pred_logits`` [1, T, Q, K], ``pred_boxes`` [1, T, Q, 4], ``pred_masks`` [1, T, Q, h, w].
        size: (H, W) of the clip (int64 [2])."""
        out = self.decode(video, text, size, with_aux=True)
        last = {
            "pred_logits": out.pred_logits,
            "pred_boxes": out.pred_boxes,
            "pred_masks": out.pred_masks,
        }
        return [*out.aux_outputs, last]

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
