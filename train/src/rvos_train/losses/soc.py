"""The training loss of SOC (joint training): per-clip matching and the set criterion, including
the visual-linguistic (text) loss ``loss_is_referred``.

Paper: Luo, Yang, Zhang, Zhang, Wang, Wang, Wu, "SOC: Semantic-Assisted Object Cluster for
Referring Video Object Segmentation", NeurIPS 2023. Upstream:
github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6, folder
``soc_test/``: ``models/matcher.py`` (``HungarianMatcher``, ``compute_label_cost``, ``dice_coef``,
``costs_box``, ``giou_cost``, ``text_refer_cost``), ``models/criterion.py`` (``SetCriterion`` with
``text_refer_loss``), ``models/segmentation.py`` (``dice_loss``, ``sigmoid_focal_loss``),
``misc.py``, ``utils.py`` (``flatten_temporal_batch_dims``), the weight dict of
``models/mttr.py::build`` and the values of ``configs/joint.yaml``; target structure of
``datasets/refer_youtube_vos/refer_youtube_vos_dataset.py``. The public release
RobertLuo1/NeurIPS2023_SOC computes the same under other names (``loss_con``, ``loss_cls``).

Known differences (``docs/training-losses.md``): the class cost is computed clip by clip, so a
batch whose clips have different numbers of visible frames works (upstream crashes; equal
visibility gives upstream's numbers); ``absent_box_terms=False`` keeps the box terms of the cost
and the loss to visible frames; a clip of T > 1 frames without a visible one gets a zero class
cost (upstream crashes); the inputs are not modified (upstream flattens them in place); only
``text_refer_loss: true`` with one class and one referred instance per clip is reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
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
    mask_losses,
    pad_masks,
    referred_class_loss,
    settings_from_upstream,
    weighted_matching,
)

FrameTargets = list[list[dict[str, Any]]]
"""Upstream's targets: over T frames, over B clips, one dict per frame."""

_UPSTREAM_NAMES = {
    "cost_text": "set_cost_is_referred",
    "cost_class": "set_cost_is_referred_assist",
    "cost_dice": "set_cost_dice",
    "cost_box": "set_costs_box",
    "cost_giou": "set_costs_giou",
    "weight_text": "is_referred_loss_coef",
    "weight_dice": "dice_loss_coef",
    "weight_focal": "sigmoid_focal_loss_coef",
    "weight_label": "is_referred_loss_coef_assist",
    "weight_bbox": "box_loss_coef",
    "weight_giou": "giou_coef",
}


@dataclass(frozen=True)
class SOCLossSettings:
    """Matching costs and loss weights; the defaults are upstream's ``configs/joint.yaml``.

    Attributes:
        cost_text: weight of the text cost −softmax_q(query · text) (``set_cost_is_referred``; 0
            upstream, so never computed).
        cost_class, cost_dice, cost_box, cost_giou: weights of the class (``..._assist``), −dice,
            L1 and −GIoU cost terms. A term is computed only when its weight is > 0.
        weight_text, weight_dice, weight_focal, weight_label, weight_bbox, weight_giou: weights of
            ``loss_is_referred``, ``loss_dice``, ``loss_sigmoid_focal``, ``loss_label``,
            ``loss_bbox``, ``loss_giou``; a loss group whose weights are all 0 is not computed.
        aux_loss: also score every auxiliary decoder layer (suffix ``_i``).
        dec_layers: decoder layers; with ``aux_loss`` the outputs carry ``dec_layers − 1``
            ``aux_outputs``.
        absent_box_terms: True (upstream): box L1 and GIoU, in the matching cost and the loss,
            include the frames where the object is absent (target = the zero box); False: only
            visible frames (the normaliser stays T·B).
    """

    cost_text: float = 0.0
    cost_class: float = 2.0
    cost_dice: float = 5.0
    cost_box: float = 2.0
    cost_giou: float = 2.0
    weight_text: float = 1.0
    weight_dice: float = 5.0
    weight_focal: float = 2.0
    weight_label: float = 2.0
    weight_bbox: float = 2.0
    weight_giou: float = 2.0
    aux_loss: bool = True
    dec_layers: int = 3
    absent_box_terms: bool = True

    def __post_init__(self) -> None:
        if not any(weight > 0 for weight in self.cost_weights().values()):
            raise ConfigError("no matching cost weight is > 0")

    @classmethod
    def from_upstream(cls, args: Mapping[str, Any], **overrides: Any) -> SOCLossSettings:
        """Settings from upstream's config values (``configs/joint.yaml`` as a mapping; the decoder
        depth as ``DeformTransformer: {dec_layers: ...}`` or ``"DeformTransformer.dec_layers"``).
        Needs ``text_refer_loss`` on and one class, as in joint training."""
        if not args.get("text_refer_loss") or args.get("num_classes", 1) != 1:
            raise ConfigError("only SOC's loss with text_refer_loss and one class is reproduced")
        nested = args.get("DeformTransformer", {})
        dec_layers = nested.get("dec_layers", args.get("DeformTransformer.dec_layers"))
        if dec_layers is None:
            raise ConfigError("upstream option DeformTransformer.dec_layers is missing")
        extra = {"aux_loss": bool(args["aux_loss"]), "dec_layers": int(dec_layers)}
        return settings_from_upstream(cls, _UPSTREAM_NAMES, args, **(extra | overrides))

    def loss_weights(self) -> dict[str, float]:
        """The last layer's weight dict (upstream's ``build`` order)."""
        return {
            "loss_is_referred": self.weight_text,
            "loss_dice": self.weight_dice,
            "loss_sigmoid_focal": self.weight_focal,
            "loss_label": self.weight_label,
            "loss_bbox": self.weight_bbox,
            "loss_giou": self.weight_giou,
        }

    def cost_weights(self) -> dict[str, float]:
        """Weight of each matching cost term, in upstream's order of summation."""
        return {
            "text": self.cost_text,
            "class": self.cost_class,
            "dice": self.cost_dice,
            "box": self.cost_box,
            "giou": self.cost_giou,
        }


@dataclass(frozen=True)
class _Batch:
    """The targets of B clips of T frames, batched clip-major.

    Attributes:
        masks: [B, T, H·W] float, zero-padded to the largest (H, W) of the batch.
        size: (H, W).
        boxes: [B, T, 4] normalised cxcywh, zeros where absent.
        visible: [B, T] bool.
        normaliser: T·B (every frame, visible or not), averaged over processes, >= 1.
    """

    masks: Tensor
    size: tuple[int, int]
    boxes: Tensor
    visible: Tensor
    normaliser: float


class SOCCriterion(Criterion[_Batch]):
    """SOC's set criterion (joint training, ``text_refer_loss``).

    Outputs (per layer, time-major; ``aux_outputs`` = decoder layers 0 .. L−2): ``pred_masks``
    [T, B, Q, h, w] logits, ``pred_boxes`` [T, B, Q, 4] sigmoid cxcywh, ``pred_is_referred``
    [T, B, Q, 1] logits, ``pred_logit`` [B, Q, C] video-query embeddings, ``text_sentence_feature``
    [B, C] (one tensor shared by all layers). Targets: ``targets(clips)``, [T][B] frame dicts.
    Losses per layer: ``loss_sigmoid_focal``, ``loss_dice``, ``loss_is_referred``, ``loss_label``,
    ``loss_bbox``, ``loss_giou``.
    """

    def __init__(self, settings: SOCLossSettings | None = None) -> None:
        self.settings = settings or SOCLossSettings()
        super().__init__(
            self.settings.loss_weights(), self.settings.aux_loss, self.settings.dec_layers
        )

    def targets(self, clips: Sequence[Clip]) -> FrameTargets:
        """Upstream's targets: for each frame t, for each clip, ``masks`` [1, h, w] bool,
        ``boxes`` [1, 4], ``referred_instance_idx`` 0, ``is_ref_inst_visible`` (bool scalar),
        ``orig_size`` (list), ``labels`` [1] (zeros: not in a Clip, never read), ``size`` int64
        (h, w), ``iscrowd`` [1] float32 zeros (the referred object only)."""
        return [
            [_frame_target(clip, frame) for clip in clips] for frame in range(clip_length(clips))
        ]

    def count(self, targets: FrameTargets) -> int:
        """Every frame target, visible or not: T·B (upstream's num_masks)."""
        return sum(len(frame) for frame in targets)

    def _prepare(
        self, targets: FrameTargets, layer: Mapping[str, Tensor], normaliser: float
    ) -> _Batch:
        reference = layer["pred_masks"]
        frames = [list(clip_frames) for clip_frames in zip(*targets, strict=True)]  # [B][T]
        if any(frame["masks"].shape[0] != 1 for clip in frames for frame in clip):
            raise ValueError("SOC's loss is reproduced for one referred instance per frame target")
        if layer["pred_is_referred"].shape[-1] != 1:
            raise ValueError("only one class is reproduced: pred_is_referred must be [T, B, Q, 1]")
        masks = pad_masks([frame["masks"][0] for clip in frames for frame in clip])
        clips, length = len(frames), len(targets)
        return _Batch(
            masks=masks.view(clips, length, -1).to(device=reference.device, dtype=reference.dtype),
            size=(masks.shape[-2], masks.shape[-1]),
            boxes=torch.stack([torch.cat([f["boxes"] for f in clip]) for clip in frames]).to(
                reference.device
            ),
            visible=_visibility(frames).to(reference.device),
            normaliser=normaliser,
        )

    def _box_frames(self, batch: _Batch) -> Tensor:
        """[B, T] bool: the frames whose box terms count."""
        return torch.ones_like(batch.visible) if self.settings.absent_box_terms else batch.visible

    def _match(self, layer: Mapping[str, Tensor], batch: _Batch) -> Matching:
        weights = self.settings.cost_weights()
        terms = self._cost_terms(layer, batch)
        return weighted_matching({k: v for k, v in terms.items() if weights[k] > 0}, weights)

    def _cost_terms(self, layer: Mapping[str, Tensor], batch: _Batch) -> dict[str, Tensor]:
        """The unweighted terms of the matching cost whose weight is > 0, each [B, Q], in upstream's
        order of summation (the others are not evaluated)."""
        weights = self.settings.cost_weights()
        terms: dict[str, Tensor] = {}
        if weights["text"] > 0:
            text = layer["text_sentence_feature"].unsqueeze(-1)
            terms["text"] = -(layer["pred_logit"] @ text).squeeze(-1).softmax(-1)
        if weights["class"] > 0:
            logits = layer["pred_is_referred"][..., 0].transpose(0, 1)
            terms["class"] = class_cost(logits, _class_frames(batch))
        if weights["dice"] > 0:
            masks = _upsample(layer["pred_masks"], batch.size).transpose(0, 1)  # [B, T, Q, H·W]
            terms["dice"] = -dice_score(masks, batch.masks.unsqueeze(2)).mean(1)
        if weights["box"] > 0 or weights["giou"] > 0:
            boxes = layer["pred_boxes"].transpose(0, 1)
            terms["box"], terms["giou"] = box_costs(boxes, batch.boxes, self._box_frames(batch))
        return terms

    def _layer_losses(
        self, layer: Mapping[str, Tensor], batch: _Batch, queries: Tensor
    ) -> dict[str, Tensor]:
        weights = self.settings.loss_weights()
        clips = torch.arange(len(queries), device=queries.device)
        losses: dict[str, Tensor] = {}
        if weights["loss_dice"] > 0 or weights["loss_sigmoid_focal"] > 0:
            masks = _upsample(layer["pred_masks"][:, clips, queries], batch.size).transpose(0, 1)
            focal, dice = mask_losses(
                masks.flatten(0, 1), batch.masks.flatten(0, 1), batch.normaliser
            )
            losses.update(loss_sigmoid_focal=focal, loss_dice=dice)
        if weights["loss_is_referred"] > 0:
            losses["loss_is_referred"] = _text_loss(
                layer["pred_logit"], layer["text_sentence_feature"], queries
            )
        if weights["loss_label"] > 0:
            logits = layer["pred_is_referred"][..., 0].transpose(0, 1)
            losses["loss_label"] = referred_class_loss(
                logits, batch.visible, queries, batch.normaliser
            )
        if weights["loss_bbox"] > 0 or weights["loss_giou"] > 0:
            boxes = layer["pred_boxes"][:, clips, queries].transpose(0, 1)  # [B, T, 4]
            frames = self._box_frames(batch).flatten()
            bbox, giou = box_losses(
                boxes.flatten(0, 1), batch.boxes.flatten(0, 1), frames, batch.normaliser
            )
            losses.update(loss_bbox=bbox, loss_giou=giou)
        return losses


def _text_loss(queries: Tensor, text: Tensor, matched: Tensor) -> Tensor:
    """The visual-linguistic loss: cross-entropy over the queries of s = (query / C) · text, the
    matched query being the class, averaged over clips (not by the target count).

    Args:
        queries: [B, Q, C] video-query embeddings.
        text: [B, C] sentence features.
        matched: [B] int64.

    Returns:
        [].
    """
    similarity = ((queries / queries.shape[-1]) @ text.unsqueeze(-1)).squeeze(-1)  # [B, Q]
    return -similarity.log_softmax(-1).gather(1, matched.unsqueeze(1)).mean()


def _class_frames(batch: _Batch) -> Tensor:
    """[B, T] bool: the frames the class cost averages, the visible ones; with T = 1 (upstream's
    image branch) the single frame, visible or not."""
    return batch.visible if batch.visible.shape[1] > 1 else torch.ones_like(batch.visible)


def _upsample(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners=False) resize of mask logits [..., h, w] -> [..., H·W]."""
    flat = logits.reshape(-1, 1, *logits.shape[-2:])
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return resized.reshape(*logits.shape[:-2], size[0] * size[1])


def _visibility(frames: Sequence[Sequence[Mapping[str, Any]]]) -> Tensor:
    """[B, T] bool from each frame's ``is_ref_inst_visible``."""
    return torch.tensor([[bool(frame["is_ref_inst_visible"]) for frame in clip] for clip in frames])


def _frame_target(clip: Clip, frame: int) -> dict[str, Any]:
    """Frame ``frame`` of ``clip`` as ``refer_youtube_vos_dataset.py`` delivers it."""
    return {
        "masks": clip.masks[frame : frame + 1].to(torch.bool),
        "boxes": clip.boxes[frame : frame + 1].to(torch.float32),
        "referred_instance_idx": torch.tensor(0, dtype=torch.int64),
        "is_ref_inst_visible": torch.tensor(bool(clip.valid[frame])),
        "orig_size": list(clip.orig_size),
        "labels": torch.zeros(1, dtype=torch.int64),
        "size": torch.tensor(clip.size, dtype=torch.int64),
        "iscrowd": torch.zeros(1, dtype=torch.float32),
    }
