"""The training loss of ReferFormer and MUTR: per-clip matching and the set criterion.

Paper: Wu, Jiang, Sun, Yuan, Luo, "Language as Queries for Referring Video Object Segmentation",
CVPR 2022; MUTR (Yan et al., "Referred by Multi-Modality: A Unified Temporal Transformer for Video
Object Segmentation", AAAI 2024) trains with the identical loss. Upstream:
github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6, folder
``ReferFormer/``: ``models/matcher.py`` (``HungarianMatcher``), ``models/criterion.py``
(``SetCriterion``), ``models/segmentation.py`` (``sigmoid_focal_loss``, ``dice_loss``),
``util/box_ops.py``, ``util/misc.py`` (``nested_tensor_from_tensor_list``), the weight dict of
``models/referformer.py::build``, the defaults of ``opts.py`` with ``--binary`` and ``--masks``;
target structure of ``datasets/ytvos.py``. The same files are identical in the competition's
``MUTR/``, in OpenGVLab/MUTR and in wjn922/ReferFormer.

Known differences (``docs/training-losses.md``): ``absent_box_terms=False`` keeps the box terms of
the cost and the loss to the frames where the object is visible (upstream, the default: all
frames); a clip without any valid frame gets a zero class cost instead of upstream's crash; the
matching is batched over clips; only the binary ("referred") class is supported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rvos_core.errors import ConfigError
from rvos_nn.training import Clip
from rvos_train.losses.common import (
    Criterion,
    Matching,
    box_costs,
    box_losses,
    class_cost,
    clip_length,
    dice_score,
    focal_term,
    mask_losses,
    pad_masks,
    referred_class_loss,
    settings_from_upstream,
    weighted_matching,
)

MASK_OUT_STRIDE = 4
"""Predicted masks are at 1/4 of the padded input; ground truth is sampled at (4i + 2, 4j + 2)."""
SIZE_DIVISIBILITY = 32
"""Target masks are padded to a multiple of 32."""

_UPSTREAM_NAMES = {
    "cost_class": "set_cost_class",
    "cost_bbox": "set_cost_bbox",
    "cost_giou": "set_cost_giou",
    "cost_mask": "set_cost_mask",
    "cost_dice": "set_cost_dice",
    "weight_ce": "cls_loss_coef",
    "weight_bbox": "bbox_loss_coef",
    "weight_giou": "giou_loss_coef",
    "weight_mask": "mask_loss_coef",
    "weight_dice": "dice_loss_coef",
    "focal_alpha": "focal_alpha",
}


@dataclass(frozen=True)
class ReferFormerLossSettings:
    """Matching costs and loss weights; the defaults are upstream's (``opts.py``).

    Attributes:
        cost_class, cost_bbox, cost_giou, cost_mask, cost_dice: weights of the matching cost terms
            (``--set_cost_*``).
        weight_ce, weight_bbox, weight_giou, weight_mask, weight_dice: loss weights of ``loss_ce``,
            ``loss_bbox``, ``loss_giou``, ``loss_mask``, ``loss_dice`` (``--*_loss_coef``).
        focal_alpha: alpha of ``loss_ce`` only (upstream's matcher and mask loss use 0.25).
        aux_loss: also score every auxiliary decoder layer (suffix ``_i``).
        dec_layers: decoder layers of the model; with ``aux_loss`` the outputs carry
            ``dec_layers − 1`` ``aux_outputs`` (full model 4).
        absent_box_terms: True (upstream): box L1 and GIoU, in the matching cost and the loss,
            include the frames where the object is absent (target = the zero box); False: only
            visible frames.
    """

    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    cost_mask: float = 2.0
    cost_dice: float = 5.0
    weight_ce: float = 2.0
    weight_bbox: float = 5.0
    weight_giou: float = 2.0
    weight_mask: float = 2.0
    weight_dice: float = 5.0
    focal_alpha: float = 0.25
    aux_loss: bool = True
    dec_layers: int = 4
    absent_box_terms: bool = True

    def __post_init__(self) -> None:
        if not any(self.cost_weights().values()):
            raise ConfigError("all matching cost weights are 0")

    @classmethod
    def from_upstream(cls, args: Mapping[str, Any], **overrides: Any) -> ReferFormerLossSettings:
        """Settings from upstream's ``opts.py`` namespace (as a mapping); needs ``binary`` and
        ``masks`` on, as in every ReferFormer/MUTR training script."""
        if not (args.get("binary") and args.get("masks", True)):
            raise ConfigError("only the binary ReferFormer loss with masks is reproduced")
        extra = {"aux_loss": bool(args["aux_loss"]), "dec_layers": int(args["dec_layers"])}
        return settings_from_upstream(cls, _UPSTREAM_NAMES, args, **(extra | overrides))

    def loss_weights(self) -> dict[str, float]:
        """The last layer's weight dict, in upstream's loss order."""
        return {
            "loss_ce": self.weight_ce,
            "loss_bbox": self.weight_bbox,
            "loss_giou": self.weight_giou,
            "loss_mask": self.weight_mask,
            "loss_dice": self.weight_dice,
        }

    def cost_weights(self) -> dict[str, float]:
        """Weight of each matching cost term."""
        return {
            "class": self.cost_class,
            "bbox": self.cost_bbox,
            "giou": self.cost_giou,
            "mask": self.cost_mask,
            "dice": self.cost_dice,
        }


@dataclass(frozen=True)
class _Batch:
    """The targets of B clips of T frames, batched.

    Attributes:
        masks: [B, T, h, w] float, padded to a multiple of 32 and sampled at (4i + 2, 4j + 2).
        boxes: [B, T, 4] normalised cxcywh, zeros where absent.
        valid: [B, T] bool.
        normaliser: the number of valid frames, averaged over processes, >= 1.
    """

    masks: Tensor
    boxes: Tensor
    valid: Tensor
    normaliser: float


class ReferFormerCriterion(Criterion[_Batch]):
    """ReferFormer's (and MUTR's) set criterion.

    Outputs (per layer, ``aux_outputs`` = decoder layers 0 .. L−2): ``pred_logits`` [B, T, Q, 1],
    ``pred_boxes`` [B, T, Q, 4] (sigmoid cxcywh), ``pred_masks`` [B, T, Q, h, w] logits at 1/4 of
    the padded input. Targets: ``targets(clips)``, a list of B dicts. Losses per layer:
    ``loss_ce``, ``loss_bbox``, ``loss_giou``, ``loss_mask``, ``loss_dice``.
    """

    def __init__(self, settings: ReferFormerLossSettings | None = None) -> None:
        self.settings = settings or ReferFormerLossSettings()
        super().__init__(
            self.settings.loss_weights(), self.settings.aux_loss, self.settings.dec_layers
        )

    def targets(self, clips: Sequence[Clip]) -> list[dict[str, Tensor]]:
        """Upstream's targets (``datasets/ytvos.py``): per clip ``frames_idx``, ``labels`` (zeros:
        the category is not in a Clip and the binary loss never reads it), ``boxes``, ``masks``
        (bool, the clip's own size), ``valid`` (int32), ``orig_size``, ``size`` (int64 (h, w))."""
        clip_length(clips)
        return [_clip_target(clip) for clip in clips]

    def count(self, targets: Sequence[Mapping[str, Tensor]]) -> int:
        """The valid frames of the batch (upstream's num_boxes)."""
        return int(sum(int((t["valid"] != 0).sum()) for t in targets))

    def _prepare(
        self,
        targets: Sequence[Mapping[str, Tensor]],
        layer: Mapping[str, Tensor],
        normaliser: float,
    ) -> _Batch:
        reference = layer["pred_masks"]
        if layer["pred_logits"].shape[-1] != 1:
            raise ValueError("only the binary loss is reproduced: pred_logits must be [B, T, Q, 1]")
        masks = pad_masks([t["masks"] for t in targets], SIZE_DIVISIBILITY)
        start = MASK_OUT_STRIDE // 2
        masks = masks[..., start::MASK_OUT_STRIDE, start::MASK_OUT_STRIDE]
        if masks.shape[-2:] != reference.shape[-2:]:
            raise ValueError(
                f"predicted masks are {tuple(reference.shape[-2:])}, the targets padded to a multiple "
                f"of {SIZE_DIVISIBILITY} and sampled every {MASK_OUT_STRIDE} are {tuple(masks.shape[-2:])}"
            )
        valid = torch.stack([t["valid"] for t in targets]).to(reference.device) != 0
        return _Batch(
            masks=masks.to(device=reference.device, dtype=reference.dtype),
            boxes=torch.stack([t["boxes"] for t in targets]).to(reference.device),
            valid=valid,
            normaliser=normaliser,
        )

    def _box_frames(self, batch: _Batch) -> Tensor:
        """[B, T] bool: the frames whose box terms count."""
        return torch.ones_like(batch.valid) if self.settings.absent_box_terms else batch.valid

    def _match(self, layer: Mapping[str, Tensor], batch: _Batch) -> Matching:
        weights = self.settings.cost_weights()
        bbox, giou = box_costs(layer["pred_boxes"], batch.boxes, self._box_frames(batch))
        masks = layer["pred_masks"].transpose(1, 2).flatten(2)  # [B, Q, T·h·w]
        target = batch.masks.flatten(1).unsqueeze(1).expand_as(masks)
        terms = {
            "class": class_cost(layer["pred_logits"][..., 0], batch.valid),
            "bbox": bbox,
            "giou": giou,
            "mask": focal_term(masks, target).mean(-1),
            "dice": -dice_score(masks, target),
        }
        return weighted_matching(terms, weights)

    def _layer_losses(
        self, layer: Mapping[str, Tensor], batch: _Batch, queries: Tensor
    ) -> dict[str, Tensor]:
        clips = torch.arange(len(queries), device=queries.device)
        norm = batch.normaliser
        ce = referred_class_loss(
            layer["pred_logits"][..., 0], batch.valid, queries, norm, self.settings.focal_alpha
        )
        boxes = layer["pred_boxes"][clips, :, queries]  # [B, T, 4]
        bbox, giou = box_losses(
            boxes.flatten(0, 1), batch.boxes.flatten(0, 1), self._box_frames(batch).flatten(), norm
        )
        masks = layer["pred_masks"][clips, :, queries]  # [B, T, h, w]
        focal, dice = mask_losses(masks.flatten(1), batch.masks.flatten(1), norm)
        return {
            "loss_ce": ce,
            "loss_bbox": bbox,
            "loss_giou": giou,
            "loss_mask": focal,
            "loss_dice": dice,
        }


def _clip_target(clip: Clip) -> dict[str, Tensor]:
    """One clip as ``datasets/ytvos.py`` + ``transforms_video.py`` deliver it."""
    length = clip.frames.shape[0]
    return {
        "frames_idx": clip.frame_ids.to(torch.int64),
        "labels": torch.zeros(length, dtype=torch.int64),
        "boxes": clip.boxes.to(torch.float32),
        "masks": clip.masks.to(torch.bool),
        "valid": clip.valid.to(torch.int32),
        "orig_size": torch.tensor(clip.orig_size, dtype=torch.int64),
        "size": torch.tensor(clip.size, dtype=torch.int64),
    }
