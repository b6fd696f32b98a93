"""The training loss of UNINEXT on referring video segmentation (task "grounding").

Paper: Yan, Jiang, Wu, Wang, Lu, Yuan, Luo, "Universal Instance Perception as Object Discovery
and Retrieval", CVPR 2023. Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @
c538b0dca85da0719b32ea45253f8b3077defea6, folder ``UNINEXT/`` (criterion identical to
MasterBin-IIAU/UNINEXT), under ``projects/UNINEXT/uninext/``: ``models/deformable_detr/
deformable_detr.py`` (``SetCriterion``, ``DINOCriterion``, ``compute_box_iou``),
``models/deformable_detr/matcher.py`` (``HungarianMatcherVL``: ``forward_ota`` = SimOTA and
``forward`` = Hungarian), ``models/deformable_detr/segmentation.py`` (the focal and dice losses),
``models/pos_neg_select.py`` (reid positives and negatives), ``models/ddetrs_dn.py``
(``prepare_for_cdn``, ``dn_post_process``), ``uninext_vid.py`` (``prepare_targets``, the weight
dict) and the glue of ``models/ddetrs_vid_dn.py::coco_forward_vis``; fvcore 0.1.5's
``giou_loss``. Written from the algorithm; the parity fixture ``train_uninext`` pins it.

A clip is a (key frame, reference frame) pair. The decoder layers of the key frame are matched by
SimOTA (dynamic k queries per object), the two-stage encoder proposals by the Hungarian algorithm,
the denoising (DN) queries by construction; reid contrasts the key frame's best query with the
reference frame's queries. Every loss is divided by its own number of matched queries (OTA), not
by an all-reduced target count.

Known differences (``docs/training-losses.md``): a batch without any object gives zero losses
(upstream crashes); fewer than 100 queries work (upstream's reid takes the top 100 IoUs); the
SimOTA conflict resolution of several objects uses the current conflicts (upstream re-uses the
first round's, unreachable with one referred object); ``loss_boxiou*`` has an explicit weight
(default 1: upstream's de-facto weight); the matching runs in the criterion, which asks the
model's mask head for the matched queries (upstream matches inside the model's forward); the DN
query construction itself (noise, attention mask) is the model's; only the RVOS configuration
(binary class against the pooled text, OTA, two-stage, DINO, IoU branch) is reproduced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from rvos_core.errors import ConfigError
from rvos_nn.training import Clip
from rvos_train.losses.common import (
    box_cxcywh_to_xyxy,
    clip_length,
    focal_class_cost,
    focal_class_cost_of_probs,
    focal_term,
    mask_losses,
    settings_from_upstream,
)

MASK_OUT_STRIDE = 4
"""Predicted masks are at 1/4 of the padded input; ground truth is sampled at (4i + 2, 4j + 2)."""
SIZE_DIVISIBILITY = 32
"""Target masks are padded to the batch's largest frame, rounded up to a multiple of 32."""
CENTRE_RADIUS = 2.5 / 32
"""SimOTA's centre prior: 2.5 strides of 32, in normalised coordinates."""
SIMOTA_GIOU_WEIGHT = 3.0
OUTSIDE_COST = 100.0
"""Added where a query's centre is not both in the object's box and in its centre region."""
NON_CANDIDATE_COST = 10000.0
"""Added where a query's centre is in no object's box and no object's centre region."""
USED_QUERY_COST = 100000.0
"""Added to taken queries before an object left without a query picks one."""
DYNAMIC_K_CANDIDATES = 10
REID_NEGATIVE_CANDIDATES = 100
"""Reid: queries in the SimOTA set of k = Σ top-100 IoUs may overlap the object: not negatives."""
REID_NEGATIVES_PER_POSITIVE = 10
FVCORE_EPS = 1e-7

_UPSTREAM_NAMES = {
    "cost_class": "MODEL.DDETRS.SET_COST_CLASS",
    "cost_bbox": "MODEL.DDETRS.SET_COST_BOX",
    "cost_giou": "MODEL.DDETRS.SET_COST_GIOU",
    "weight_ce": "MODEL.DDETRS.CLASS_WEIGHT",
    "weight_bbox": "MODEL.DDETRS.L1_WEIGHT",
    "weight_giou": "MODEL.DDETRS.GIOU_WEIGHT",
    "weight_mask": "MODEL.DDETRS.MASK_WEIGHT",
    "weight_dice": "MODEL.DDETRS.DICE_WEIGHT",
    "weight_reid": "MODEL.DDETRS.REID_WEIGHT",
    "focal_alpha": "MODEL.DDETRS.FOCAL_ALPHA",
}
_UPSTREAM_COUNTS = {"dn_number": "MODEL.DDETRS.DN_NUMBER", "dec_layers": "MODEL.DDETRS.DEC_LAYERS"}
_REPRODUCED_FLAGS = {
    "MODEL.OTA": True,
    "MODEL.STILL_CLS_FOR_ENCODER": True,
    "MODEL.USE_IOU_BRANCH": True,
    "MODEL.BOXINST.ENABLED": False,
    "MODEL.DDETRS.USE_DINO": True,
    "MODEL.DDETRS.TWO_STAGE": True,
    "MODEL.DDETRS.DEEP_SUPERVISION": True,
    "MODEL.DDETRS.MASK_STRIDE": MASK_OUT_STRIDE,
}
"""Upstream options of the configuration this criterion reproduces (every RVOS one)."""

PairIndices = list[tuple[Tensor, Tensor]]
"""Per image (query index int64 [N], target index int64 [N])."""
NegativeSampler = Callable[[int, int], Sequence[int]]
"""(number of negatives n, count k) -> k distinct positions in range(n)."""


def random_negatives(population: int, count: int) -> list[int]:
    """``count`` distinct positions of ``range(population)`` from torch's generator, which the
    engine seeds for every micro-batch (upstream: ``random.sample`` of Python's global generator;
    nothing seeds that one per step, so a resumed run would draw other negatives)."""
    return torch.randperm(population)[:count].tolist()


@dataclass(frozen=True)
class UNINEXTLossSettings:
    """Matching costs, loss weights and sizes; the defaults are upstream's RVOS configuration.

    Attributes:
        cost_class, cost_bbox, cost_giou: weights of the Hungarian cost of the encoder proposals
            (``SET_COST_*``; SimOTA's weights are fixed: class 1, GIoU 3).
        weight_ce, weight_bbox, weight_giou, weight_mask, weight_dice, weight_reid: loss weights
            (``CLASS_WEIGHT`` ... ``REID_WEIGHT``); ``loss_reid_aux`` weighs 1.5 · weight_reid.
        weight_boxiou: weight of ``loss_boxiou`` (the IoU branch); upstream has none, so the
            trainer's plain sum gives it 1.
        focal_alpha: alpha of the class losses.
        dn_number: DN_NUMBER, the budget of denoising queries (groups = 2·dn_number over
            2·the largest object count, at least 1).
        dec_layers: decoder layers L; layers 0 .. L−2 are scored with the suffix ``_i``
            (DEEP_SUPERVISION, on in every upstream configuration), the encoder proposals with
            ``_enc``.
    """

    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    weight_ce: float = 2.0
    weight_bbox: float = 5.0
    weight_giou: float = 2.0
    weight_mask: float = 2.0
    weight_dice: float = 5.0
    weight_reid: float = 2.0
    weight_boxiou: float = 1.0
    focal_alpha: float = 0.25
    dn_number: int = 100
    dec_layers: int = 6

    def __post_init__(self) -> None:
        if not (self.cost_class or self.cost_bbox or self.cost_giou):
            raise ConfigError("all matching cost weights are 0")
        if self.dn_number < 1:
            raise ConfigError(f"dn_number must be >= 1, got {self.dn_number}")

    @classmethod
    def from_upstream(cls, cfg: Mapping[str, Any], **overrides: Any) -> UNINEXTLossSettings:
        """Settings from upstream's detectron2 configuration, flattened to dotted keys
        (``"MODEL.DDETRS.CLASS_WEIGHT"``: 2.0, ...); the flags of ``_REPRODUCED_FLAGS`` must have
        their reproduced values."""
        wrong = {k: cfg.get(k) for k, v in _REPRODUCED_FLAGS.items() if cfg.get(k) != v}
        if wrong:
            raise ConfigError(f"only {_REPRODUCED_FLAGS} is reproduced, got {wrong}")
        missing = sorted(option for option in _UPSTREAM_COUNTS.values() if option not in cfg)
        if missing:
            raise ConfigError(f"upstream options {missing} are missing")
        extra = {name: int(cfg[option]) for name, option in _UPSTREAM_COUNTS.items()}
        return settings_from_upstream(cls, _UPSTREAM_NAMES, cfg, **(extra | overrides))

    def weight_dict(self) -> dict[str, float]:
        """Upstream's weight dict (``uninext_vid.py``, with its never-produced ``_i`` reid and
        ``_enc`` mask/reid entries) plus the ``loss_boxiou`` entries."""
        base = {
            "loss_ce": self.weight_ce,
            "loss_bbox": self.weight_bbox,
            "loss_giou": self.weight_giou,
            "loss_mask": self.weight_mask,
            "loss_dice": self.weight_dice,
            "loss_reid": self.weight_reid,
            "loss_reid_aux": 1.5 * self.weight_reid,
        }
        dn = {"loss_ce_dn": self.weight_ce, "loss_bbox_dn": self.weight_bbox}
        dn["loss_giou_dn"] = self.weight_giou
        aux = [f"_{layer}" for layer in range(self.dec_layers - 1)]
        weights = dict(base)
        for suffix in [*aux, "_enc"]:
            weights.update({name + suffix: value for name, value in base.items()})
        weights.update(dn)
        for suffix in aux:
            weights.update({name + suffix: value for name, value in dn.items()})
        weights.update({"loss_boxiou" + suffix: self.weight_boxiou for suffix in ["", *aux]})
        return weights


# ---------------------------------------------------------------- boxes


def iou_and_giou(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> tuple[Tensor, Tensor]:
    """IoU and generalized IoU of xyxy boxes, elementwise with broadcasting:
    iou = inter / (union + eps), giou = iou − (enclosing − union) / (enclosing + eps).
    eps 0: torchvision's ``box_iou`` and DETR's GIoU; eps 1e-7: fvcore's ``giou_loss``.

    Args:
        boxes1: [..., 4] xyxy.
        boxes2: [..., 4] xyxy, broadcastable against ``boxes1``.

    Returns:
        (iou, giou), each of the broadcast shape [...].
    """

    def area(top_left: Tensor, bottom_right: Tensor) -> Tensor:
        extent = (bottom_right - top_left).clamp(min=0)
        return extent[..., 0] * extent[..., 1]

    inter = area(
        torch.maximum(boxes1[..., :2], boxes2[..., :2]),
        torch.minimum(boxes1[..., 2:], boxes2[..., 2:]),
    )
    union = area(boxes1[..., :2], boxes1[..., 2:]) + area(boxes2[..., :2], boxes2[..., 2:]) - inter
    enclosing = area(
        torch.minimum(boxes1[..., :2], boxes2[..., :2]),
        torch.maximum(boxes1[..., 2:], boxes2[..., 2:]),
    )
    iou = inter / (union + eps)
    return iou, iou - (enclosing - union) / (enclosing + eps)


def pairwise_iou_and_giou(boxes: Tensor, objects: Tensor) -> tuple[Tensor, Tensor]:
    """[Q, 4] and [G, 4] cxcywh -> (IoU [Q, G], GIoU [Q, G]) without eps."""
    return iou_and_giou(
        box_cxcywh_to_xyxy(boxes).unsqueeze(1), box_cxcywh_to_xyxy(objects).unsqueeze(0)
    )


# ---------------------------------------------------------------- SimOTA


@dataclass(frozen=True)
class SimOTAMatch:
    """One image's SimOTA assignment.

    Attributes:
        queries: [N] int64 the assigned queries, ascending.
        objects: [N] int64 the object of each.
        best: [G] int64 each object's lowest-cost assigned query (upstream's matched_ids).
        assigned: [Q, G] bool the assignment matrix.
    """

    queries: Tensor
    objects: Tensor
    best: Tensor
    assigned: Tensor


def centre_priors(boxes: Tensor, objects: Tensor) -> tuple[Tensor, Tensor]:
    """Where each query's centre lies: in an object's box (strictly), in its centre region
    (strictly within CENTRE_RADIUS of the object's centre on both axes).

    Args:
        boxes: [Q, 4] predicted cxcywh.
        objects: [G, 4] cxcywh.

    Returns:
        (candidate [Q] bool: in some object's box or centre region,
         inside_both [Q, G] bool: in that object's box and its centre region).
    """
    centres = boxes[:, None, :2]
    corners = box_cxcywh_to_xyxy(objects)
    in_box = ((centres > corners[None, :, :2]) & (centres < corners[None, :, 2:])).all(-1)
    near = objects[None, :, :2]
    in_centre = ((centres > near - CENTRE_RADIUS) & (centres < near + CENTRE_RADIUS)).all(-1)
    return in_box.any(1) | in_centre.any(1), in_box & in_centre


def simota_cost(
    probs: Tensor, boxes: Tensor, objects: Tensor, tokens: Tensor
) -> tuple[Tensor, Tensor]:
    """SimOTA's cost: class + 3·(−GIoU) + 100 where not in box and centre + 10000 for queries
    outside every object's box and centre region.

    Args:
        probs: [Q, C] query probabilities per text token (RVOS: C = 1).
        boxes: [Q, 4] cxcywh.
        objects: [G, 4] cxcywh.
        tokens: [G, C] bool, each object's positive tokens.

    Returns:
        (cost [Q, G], IoU [Q, G]).
    """
    candidate, inside_both = centre_priors(boxes, objects)
    iou, giou = pairwise_iou_and_giou(boxes, objects)
    token_cost = focal_class_cost_of_probs(probs)  # [Q, C]
    weights = tokens.to(token_cost.dtype)
    class_cost = token_cost @ weights.T / weights.sum(1)  # mean over each object's tokens
    cost = class_cost - SIMOTA_GIOU_WEIGHT * giou + OUTSIDE_COST * (~inside_both)
    return cost + NON_CANDIDATE_COST * (~candidate).unsqueeze(1), iou


def dynamic_ks(iou: Tensor, candidates: int) -> Tensor:
    """Each object's k: the integer part of the sum of its ``candidates`` largest IoUs (at most
    Q of them), at least 1. [Q, G] -> [G] int64."""
    top = iou.topk(min(candidates, iou.shape[0]), dim=0).values
    return top.sum(0).to(torch.int64).clamp(min=1)


def _keep_cheapest(assigned: Tensor, cost: Tensor) -> Tensor:
    """A query assigned to several objects keeps only its cheapest one. [Q, G] -> [Q, G]."""
    shared = assigned.sum(1) > 1
    cheapest = F.one_hot(cost.argmin(1), cost.shape[1]).bool()
    return torch.where(shared.unsqueeze(1), cheapest, assigned)


def dynamic_k_assignment(cost: Tensor, iou: Tensor, candidates: int) -> tuple[Tensor, Tensor]:
    """SimOTA's assignment: each object takes its k lowest-cost queries; a query taken by several
    objects keeps the cheapest; an object left without a query takes its lowest-cost free query
    (taken ones cost USED_QUERY_COST more), until every object has one.

    Args:
        cost: [Q, G].
        iou: [Q, G], sets k (``dynamic_ks``).
        candidates: how many of the largest IoUs set k.

    Returns:
        (assigned [Q, G] bool, the cost after the penalties of the free-query rounds [Q, G]).
    """
    if cost.shape[1] > cost.shape[0]:
        raise ValueError(f"{cost.shape[1]} objects for {cost.shape[0]} queries")
    cost = cost.clone()
    assigned = torch.zeros_like(cost, dtype=torch.bool)
    for obj, k in enumerate(dynamic_ks(iou, candidates).tolist()):
        assigned[cost[:, obj].topk(k, largest=False).indices, obj] = True
    assigned = _keep_cheapest(assigned, cost)
    while not assigned.any(0).all():
        cost[assigned.any(1)] += USED_QUERY_COST
        for obj in (~assigned.any(0)).nonzero().flatten().tolist():
            assigned[cost[:, obj].argmin(), obj] = True
        assigned = _keep_cheapest(assigned, cost)
    return assigned, cost


def simota_match(
    probs: Tensor, boxes: Tensor, objects: Tensor, tokens: Tensor, candidates: int
) -> SimOTAMatch:
    """SimOTA of one image (shapes of ``simota_cost``); no objects: an empty match."""
    device = boxes.device
    if objects.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        assigned = torch.zeros(boxes.shape[0], 0, dtype=torch.bool, device=device)
        return SimOTAMatch(empty, empty, empty, assigned)
    cost, iou = simota_cost(probs, boxes, objects, tokens)
    assigned, cost = dynamic_k_assignment(cost, iou, candidates)
    queries = assigned.any(1).nonzero().flatten()
    best = cost.masked_fill(~assigned, float("inf")).argmin(0)
    return SimOTAMatch(queries, assigned[queries].to(torch.int64).argmax(1), best, assigned)


# ---------------------------------------------------------------- Hungarian (encoder)


def hungarian_match(
    logits: Tensor, boxes: Tensor, objects: Tensor, weights: tuple[float, float, float]
) -> tuple[Tensor, Tensor]:
    """One-to-one assignment of the encoder proposals (binary class, every object positive).

    Args:
        logits: [E, 1].
        boxes: [E, 4] cxcywh.
        objects: [G, 4] cxcywh.
        weights: (class, L1, GIoU) weights of the cost.

    Returns:
        (proposal [G] int64 ascending, object [G] int64).
    """
    cost_class, cost_bbox, cost_giou = weights
    l1 = (boxes.unsqueeze(1) - objects.unsqueeze(0)).abs().sum(-1)
    giou = pairwise_iou_and_giou(boxes, objects)[1]
    cost = cost_bbox * l1 + cost_class * focal_class_cost(logits[:, :1]) - cost_giou * giou
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    device = boxes.device
    return torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)


# ---------------------------------------------------------------- denoising queries


@dataclass(frozen=True)
class DNLayout:
    """Where the denoising queries sit (``prepare_for_cdn``): ``groups`` groups of
    ``group_size`` = 2·(largest object count) slots, positives first, then negatives; the DN
    slots precede the matching queries.

    Attributes:
        groups: number of groups (upstream's dn_num).
        group_size: slots per group (upstream's single_padding).
    """

    groups: int
    group_size: int

    @property
    def size(self) -> int:
        """All DN slots (upstream's pad_size)."""
        return self.groups * self.group_size

    def positives(self, count: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """The positive slots of an image with ``count`` objects and their objects:
        slot j·group_size + t for group j and object t. -> ([groups·count], [groups·count])."""
        objects = torch.arange(count, device=device).repeat(self.groups)
        groups = torch.arange(self.groups, device=device).repeat_interleave(count)
        return groups * self.group_size + objects, objects


def dn_layout(counts: Sequence[int], dn_number: int) -> DNLayout:
    """The DN layout of a batch whose images hold ``counts`` objects; no objects at all: no DN
    queries (upstream crashes)."""
    largest = max(counts, default=0)
    if largest == 0:
        return DNLayout(groups=0, group_size=0)
    return DNLayout(groups=max(1, (2 * dn_number) // (2 * largest)), group_size=2 * largest)


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class PairTargets:
    """Upstream's ``prepare_targets`` of B clips: per clip one dict for the key frame and one for
    the reference frame, with ``labels``, ``boxes`` (normalised cxcywh), ``masks`` (bool, padded to
    the batch's largest frame rounded up to 32), ``image_size`` ([w, h, w, h] float),
    ``positive_map`` (bool [N, C]), ``inst_id``, ``valid`` (bool), ``bboxes_unorm`` (xyxy pixels).
    Objects invalid on the key frame are removed from both frames."""

    key: list[dict[str, Tensor]]
    ref: list[dict[str, Tensor]]

    def to(self, device: torch.device) -> PairTargets:
        """The same targets on ``device``."""
        key, ref = (
            [{k: v.to(device) for k, v in t.items()} for t in f] for f in (self.key, self.ref)
        )
        return PairTargets(key=key, ref=ref)


def prepare_targets(frames: Sequence[Mapping[str, Any]]) -> PairTargets:
    """``PairTargets`` of frames (key, reference, key, reference, ...), each a mapping with
    ``image_size`` (h, w), ``gt_masks`` [N, h, w] bool, ``gt_boxes_xyxy_abs`` [N, 4],
    ``gt_ids`` [N] (−1: invalid), ``gt_classes`` [N], ``positive_map`` [N, C] bool."""
    if len(frames) % 2:
        raise ValueError(f"frames come in (key, reference) pairs, got {len(frames)}")
    height, width = (
        -(-max(int(f["gt_masks"].shape[d]) for f in frames) // SIZE_DIVISIBILITY)
        * SIZE_DIVISIBILITY
        for d in (1, 2)
    )
    targets = [_frame_target(f, height, width) for f in frames]
    key, ref = targets[0::2], targets[1::2]
    for index, (key_target, ref_target) in enumerate(zip(key, ref, strict=True)):
        kept = key_target["valid"]
        key[index], ref[index] = (
            {k: v if k == "image_size" else v[kept] for k, v in t.items()}
            for t in (key_target, ref_target)
        )
    return PairTargets(key=key, ref=ref)


def _frame_target(frame: Mapping[str, Any], height: int, width: int) -> dict[str, Tensor]:
    """One frame of ``prepare_targets``, masks padded to (height, width)."""
    h, w = frame["image_size"]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    corners = frame["gt_boxes_xyxy_abs"].to(torch.float32)
    normalised = corners / scale
    boxes = torch.cat(
        ((normalised[:, :2] + normalised[:, 2:]) / 2, normalised[:, 2:] - normalised[:, :2]), 1
    )
    masks = frame["gt_masks"]
    padded = masks.new_zeros((masks.shape[0], height, width))
    padded[:, : masks.shape[1], : masks.shape[2]] = masks
    return {
        "labels": frame["gt_classes"],
        "boxes": boxes,
        "masks": padded,
        "image_size": scale,
        "positive_map": frame["positive_map"],
        "inst_id": frame["gt_ids"],
        "valid": frame["gt_ids"] != -1,
        "bboxes_unorm": corners,
    }


def mask_box(mask: Tensor) -> Tensor:
    """The tight box of a [h, w] mask in pixels, xyxy with exclusive ends (the mapper's
    ``gt_boxes``); zeros for an empty mask. -> [4] float32."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return torch.zeros(4)
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def clip_frames(clip: Clip) -> list[dict[str, Any]]:
    """A two-frame clip (key, reference) as the mapper's frames for ``prepare_targets``: one
    object (the referred one, id 0, −1 where not visible) with one text token."""
    return [
        {
            "image_size": clip.size,
            "gt_masks": clip.masks[t : t + 1].to(torch.bool),
            "gt_boxes_xyxy_abs": mask_box(clip.masks[t]).unsqueeze(0),
            "gt_ids": torch.tensor([0 if clip.valid[t] else -1]),
            "gt_classes": torch.zeros(1, dtype=torch.int64),
            "positive_map": torch.ones(1, 1, dtype=torch.bool),
        }
        for t in range(2)
    ]


# ---------------------------------------------------------------- losses


def class_loss(
    logits: Tensor, indices: PairIndices, tokens: Sequence[Tensor], alpha: float
) -> Tensor:
    """Token-sigmoid focal loss over every query and token, target = the matched object's
    positive tokens, divided by the number of matched queries (0 without any).

    Args:
        logits: [B, Q, C].
        indices: per image (query [N_b], object [N_b]).
        tokens: per image [G_b, C] bool positive maps.

    Returns:
        [].
    """
    matched = sum(len(q) for q, _ in indices)
    if matched == 0:
        return logits.sum() * 0.0
    target = torch.zeros_like(logits)
    for image, ((queries, objects), positive) in enumerate(zip(indices, tokens, strict=True)):
        target[image, queries] = positive[objects].to(logits.dtype)
    return focal_term(logits, target, alpha).sum() / matched


def box_losses(
    boxes: Tensor, ious: Tensor | None, indices: PairIndices, objects: Sequence[Tensor]
) -> dict[str, Tensor]:
    """L1 and fvcore-GIoU losses of the matched boxes over the number of matched queries, and
    the IoU branch's BCE (mean) against the detached IoU when ``ious`` is given.

    Args:
        boxes: [B, Q, 4] cxcywh.
        ious: [B, Q, 1] IoU logits, or None (encoder, DN).
        indices: per image (query [N_b], object [N_b]).
        objects: per image [G_b, 4] cxcywh.

    Returns:
        ``loss_bbox``, ``loss_giou`` (and ``loss_boxiou``), each [].
    """
    images = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])
    queries = torch.cat([q for q, _ in indices])
    pred = boxes[images, queries]
    target = torch.cat([o[t] for o, (_, t) in zip(objects, indices, strict=True)])
    losses = {"loss_bbox": boxes.sum() * 0.0, "loss_giou": boxes.sum() * 0.0}
    if ious is not None:
        losses["loss_boxiou"] = ious.sum() * 0.0
    if len(pred) == 0:
        return losses
    pred_xyxy, target_xyxy = box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(target)
    losses["loss_bbox"] = (pred - target).abs().sum() / len(pred)
    losses["loss_giou"] = (1 - iou_and_giou(pred_xyxy, target_xyxy, FVCORE_EPS)[1]).sum() / len(
        pred
    )
    if ious is not None:
        with torch.no_grad():
            overlap = iou_and_giou(pred_xyxy, target_xyxy)[0]
        scores = ious[images, queries, 0]
        losses["loss_boxiou"] = F.binary_cross_entropy_with_logits(scores, overlap)
    return losses


def target_masks(masks: Sequence[Tensor], indices: PairIndices, dtype: torch.dtype) -> Tensor:
    """The matched objects' masks sampled at (4i + 2, 4j + 2), image by image in the order of
    ``indices``. masks: per image [G_b, H, W] bool (padded alike) -> [N, H/4, W/4]."""
    start = MASK_OUT_STRIDE // 2
    rows = [
        m[t][:, start::MASK_OUT_STRIDE, start::MASK_OUT_STRIDE]
        for m, (_, t) in zip(masks, indices, strict=True)
    ]
    return torch.cat(rows).to(dtype)


def layer_mask_losses(logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
    """Focal (mean over pixels) and dice losses over the number of masks. [N, h, w] each."""
    if logits.shape[0] == 0:
        zero = logits.sum() * 0.0
        return {"loss_mask": zero, "loss_dice": zero}
    focal, dice = mask_losses(logits.flatten(1), targets.flatten(1), logits.shape[0])
    return {"loss_mask": focal, "loss_dice": dice}


# ---------------------------------------------------------------- reid


def negative_count(positives: int, negatives: int) -> int:
    """How many negatives the cosine loss samples: 10 per positive, all when that many or more
    are asked, 10 without positives."""
    if positives == 0:
        return REID_NEGATIVES_PER_POSITIVE
    return min(negatives, REID_NEGATIVES_PER_POSITIVE * positives)


def reid_selection(
    scores: Tensor, boxes: Tensor, target: Mapping[str, Tensor]
) -> list[tuple[Tensor, Tensor] | None]:
    """The reference frame's positives and non-negatives of each object (None where invalid):
    the SimOTA sets with k from the top 10 and the top 100 IoUs.

    Args:
        scores: [Q, C] probabilities of the reference frame's queries.
        boxes: [Q, 4] cxcywh.
        target: the reference frame's ``PairTargets`` entry.

    Returns:
        per object (positive [Q] bool, not negative [Q] bool) or None.
    """
    valid = target["valid"]
    objects, tokens = target["boxes"][valid], target["positive_map"][valid]
    if objects.shape[0] == 0:
        return [None] * len(valid)
    cost, iou = simota_cost(scores, boxes, objects, tokens)
    positive = dynamic_k_assignment(cost, iou, DYNAMIC_K_CANDIDATES)[0]
    overlapping = dynamic_k_assignment(cost, iou, REID_NEGATIVE_CANDIDATES)[0]
    pairs = iter(zip(positive.T, overlapping.T, strict=True))
    return [next(pairs) if v else None for v in valid.tolist()]


@dataclass
class ReidItem:
    """One object's reid terms.

    Attributes:
        contrast: [P + N] dot products of the positives, then the negatives, with the key embed.
        positives: P.
        cosine: [P + S] cosine similarities of the positives and the S sampled negatives.
    """

    contrast: Tensor
    positives: int
    cosine: Tensor


def reid_item(
    key: Tensor, ref: Tensor, selection: tuple[Tensor, Tensor], sample: NegativeSampler
) -> ReidItem:
    """The reid terms of one object: ``key`` [D] its key-frame embedding, ``ref`` [Q, D] the
    reference frame's embeddings, ``selection`` of ``reid_selection``."""
    positive, overlapping = selection
    pos, neg = ref[positive], ref[~overlapping]
    count = negative_count(len(pos), len(neg))
    ids = list(sample(len(neg), count))
    if len(ids) != count:
        raise ValueError(f"the negative sampler gave {len(ids)} ids, {count} asked")
    sampled = F.normalize(torch.cat((pos, neg[ids])), dim=1)
    return ReidItem(
        contrast=torch.cat((pos, neg)) @ key,
        positives=len(pos),
        cosine=sampled @ F.normalize(key, dim=0),
    )


def reid_losses(items: Sequence[ReidItem], anchor: Tensor) -> dict[str, Tensor]:
    """``loss_reid``: mean over items of log(1 + Σ_{i pos, j neg} exp(neg_j − pos_i));
    ``loss_reid_aux``: mean over items of the mean squared error of the cosines against 1 / 0.
    No items: zeros attached to ``anchor``."""
    if not items:
        zero = anchor.sum() * 0.0
        return {"loss_reid": zero, "loss_reid_aux": zero}
    contrastive, squared = [], []
    for item in items:
        pos, neg = item.contrast[: item.positives], item.contrast[item.positives :]
        margins = (neg.unsqueeze(0) - pos.unsqueeze(1)).flatten()
        contrastive.append(torch.cat((margins, margins.new_zeros(1))).logsumexp(0))
        label = torch.zeros_like(item.cosine)
        label[: item.positives] = 1
        squared.append(((item.cosine - label) ** 2).mean())
    return {
        "loss_reid": torch.stack(contrastive).sum() / len(items),
        "loss_reid_aux": torch.stack(squared).sum() / len(items),
    }


# ---------------------------------------------------------------- the criterion


@dataclass
class UNINEXTCriterion:
    """UNINEXT's criterion for referring segmentation (``DINOCriterion`` with OTA).

    Outputs (L decoder layers, B clips, P = ``dn_layout(...).size`` DN slots then Q queries):
    ``pred_logits`` [L] × [B, P + Q, 1], ``pred_boxes`` [L] × [B, P + Q, 4] (sigmoid cxcywh),
    ``pred_ious`` [L] × [B, P + Q, 1] (IoU-branch logits), ``mask_logits`` (a callable: decoder
    layer l, its matched ``PairIndices`` -> [N, h, w] mask logits of those queries, image by
    image in that order, at 1/4 of the padded input; upstream's dynamic mask head runs only on
    the matched queries), ``enc_logits`` [B, E, 1], ``enc_boxes`` [B, E, 4], ``key_embeds``,
    ``ref_embeds`` [B, Q, D] (reid-head outputs), ``ref_boxes`` [B, Q, 4] and ``ref_scores``
    [B, Q, 1] (the reference frame's last-layer boxes and probabilities, no gradient).

    ``sample_negatives`` draws the negatives of the cosine loss (upstream: ``random.sample``).
    """

    settings: UNINEXTLossSettings = field(default_factory=UNINEXTLossSettings)
    sample_negatives: NegativeSampler = random_negatives

    def __post_init__(self) -> None:
        self.weight_dict: dict[str, float] = self.settings.weight_dict()

    def targets(self, clips: Sequence[Clip]) -> PairTargets:
        """Upstream's targets of B two-frame clips (frame 0 key, frame 1 reference)."""
        if clip_length(clips) != 2:
            raise ValueError("UNINEXT trains on (key, reference) clips of 2 frames")
        return prepare_targets([frame for clip in clips for frame in clip_frames(clip)])

    def count(self, targets: PairTargets) -> int:
        """The key frames' objects (upstream's num_boxes; the OTA losses do not use it)."""
        return sum(len(t["labels"]) for t in targets.key)

    def dn_layout(self, targets: PairTargets) -> DNLayout:
        """Where the model puts the DN queries of this batch."""
        return dn_layout([len(t["labels"]) for t in targets.key], self.settings.dn_number)

    def match(self, logits: Tensor, boxes: Tensor, targets: PairTargets) -> list[SimOTAMatch]:
        """SimOTA of one decoder layer's matching queries ([B, Q, C] logits, [B, Q, 4] boxes,
        without the DN slots) against the key frames."""
        targets = targets.to(boxes.device)
        with torch.no_grad():
            return [
                simota_match(p.sigmoid(), b, t["boxes"], t["positive_map"], DYNAMIC_K_CANDIDATES)
                for p, b, t in zip(logits, boxes, targets.key, strict=True)
            ]

    def match_encoder(self, logits: Tensor, boxes: Tensor, targets: PairTargets) -> PairIndices:
        """Hungarian assignment of the encoder proposals ([B, E, 1], [B, E, 4])."""
        s = self.settings
        targets = targets.to(boxes.device)
        with torch.no_grad():
            return [
                hungarian_match(p, b, t["boxes"], (s.cost_class, s.cost_bbox, s.cost_giou))
                for p, b, t in zip(logits, boxes, targets.key, strict=True)
            ]

    def __call__(
        self, outputs: Mapping[str, Any], targets: PairTargets, normaliser: float | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The unweighted losses in upstream's order and the indices ``{"decoder": [L] ×
        PairIndices, "enc": PairIndices, "dn": PairIndices}``. ``normaliser`` is accepted for the
        engine and unused: with OTA every loss divides by its own number of matched queries."""
        del normaliser
        targets = targets.to(outputs["pred_logits"][0].device)
        layers = len(outputs["pred_logits"])
        if layers != self.settings.dec_layers:
            raise ValueError(f"dec_layers={self.settings.dec_layers}, the outputs have {layers}")
        layout = self.dn_layout(targets)
        slots, queries = outputs["pred_logits"][0].shape[1], outputs["key_embeds"].shape[1]
        if slots != layout.size + queries:
            raise ValueError(f"{slots} decoder slots, expected {layout.size} DN + {queries}")
        matches = [
            self.match(logits[:, layout.size :], boxes[:, layout.size :], targets)
            for logits, boxes in zip(outputs["pred_logits"], outputs["pred_boxes"], strict=True)
        ]
        decoder = [[(m.queries, m.objects) for m in layer] for layer in matches]
        order = [layers - 1, *range(layers - 1)]
        losses: dict[str, Tensor] = {}
        for position, layer in enumerate(order):
            suffix = "" if position == 0 else f"_{layer}"
            layer_losses = self._decoder_losses(
                outputs, targets, layer, decoder[layer], layout.size
            )
            if position == 0:
                key_queries = [m.best for m in matches[layer]]
                layer_losses.update(self._reid_losses(outputs, targets, key_queries))
            losses.update({name + suffix: value for name, value in layer_losses.items()})
        enc_logits, enc_boxes = outputs["enc_logits"], outputs["enc_boxes"]
        enc = self.match_encoder(enc_logits, enc_boxes, targets)
        enc_losses = self._box_and_class(enc_logits, enc_boxes, None, enc, targets, binary=True)
        losses.update({name + "_enc": value for name, value in enc_losses.items()})
        dn = [layout.positives(len(t["labels"]), t["labels"].device) for t in targets.key]
        for position, layer in enumerate(order):
            suffix = "_dn" if position == 0 else f"_dn_{layer}"
            logits = outputs["pred_logits"][layer][:, : layout.size]
            boxes = outputs["pred_boxes"][layer][:, : layout.size]
            dn_losses = self._box_and_class(logits, boxes, None, dn, targets)
            losses.update({name + suffix: value for name, value in dn_losses.items()})
        return losses, {"decoder": decoder, "enc": enc, "dn": dn}

    def total(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Σ weight_dict[name] · loss over ``losses``."""
        missing = sorted(set(losses) - set(self.weight_dict))
        if missing:
            raise ConfigError(f"no weight for the losses {missing}")
        return torch.stack([self.weight_dict[name] * loss for name, loss in losses.items()]).sum()

    def _box_and_class(
        self,
        logits: Tensor,
        boxes: Tensor,
        ious: Tensor | None,
        indices: PairIndices,
        targets: PairTargets,
        binary: bool = False,
    ) -> dict[str, Tensor]:
        """``loss_ce`` and the box losses; ``binary``: every object's single token is positive
        (the encoder's class-agnostic proposals)."""
        tokens = [
            torch.ones_like(t["positive_map"][:, :1]) if binary else t["positive_map"]
            for t in targets.key
        ]
        ce = class_loss(logits, indices, tokens, self.settings.focal_alpha)
        return {
            "loss_ce": ce,
            **box_losses(boxes, ious, indices, [t["boxes"] for t in targets.key]),
        }

    def _decoder_losses(
        self,
        outputs: Mapping[str, Any],
        targets: PairTargets,
        layer: int,
        indices: PairIndices,
        dn_size: int,
    ) -> dict[str, Tensor]:
        """One decoder layer's class, box, IoU-branch and mask losses (matching queries only)."""
        logits = outputs["pred_logits"][layer][:, dn_size:]
        boxes = outputs["pred_boxes"][layer][:, dn_size:]
        ious = outputs["pred_ious"][layer][:, dn_size:]
        losses = self._box_and_class(logits, boxes, ious, indices, targets)
        masks = outputs["mask_logits"](layer, indices)
        wanted = target_masks([t["masks"] for t in targets.key], indices, masks.dtype)
        if wanted.shape != masks.shape:
            raise ValueError(
                f"mask_logits of layer {layer}: {tuple(masks.shape)}, the targets "
                f"{tuple(wanted.shape)}"
            )
        return losses | layer_mask_losses(masks, wanted)

    def _reid_losses(
        self, outputs: Mapping[str, Any], targets: PairTargets, key_queries: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """``loss_reid`` and ``loss_reid_aux``; ``key_queries``: per image [G_b], each key-frame
        object's lowest-cost query of the last decoder layer."""
        items = []
        for image, ref_target in enumerate(targets.ref):
            with torch.no_grad():
                selections = reid_selection(
                    outputs["ref_scores"][image], outputs["ref_boxes"][image], ref_target
                )
            for selection, query in zip(selections, key_queries[image], strict=True):
                if selection is not None:
                    key = outputs["key_embeds"][image, query]
                    items.append(
                        reid_item(
                            key, outputs["ref_embeds"][image], selection, self.sample_negatives
                        )
                    )
        return reid_losses(items, outputs["key_embeds"])
