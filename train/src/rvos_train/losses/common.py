"""The pieces shared by the set criteria of ReferFormer/MUTR and SOC.

Both families descend from DETR's set criterion and agree on these: the sigmoid focal term
(RetinaNet, alpha 0.25, gamma 2) and its matching-cost form, the smoothed dice score, the
generalized IoU with the +1e-6 of the competition's box utilities, one target per clip (so the
"Hungarian" matching is an argmin over the queries), the class loss on the matched query of every
visible frame, the box and mask losses, the all-reduced target count, and the loop over the last
decoder layer and the auxiliary ones.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
``ReferFormer/models/{matcher,criterion,segmentation}.py``, ``ReferFormer/util/{box_ops,misc}.py``
and ``soc_test/models/{matcher,criterion,segmentation}.py``, ``soc_test/misc.py``. The formulas are
written from the algorithm, batched over clips; ``docs/training-losses.md`` lists what differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch import distributed as dist

from rvos_core.errors import ConfigError
from rvos_nn.training import Clip

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
CLASS_COST_EPS = 1e-8
GIOU_EPS = 1e-6

Indices = list[tuple[Tensor, Tensor]]
"""Per clip (query index int64 [1], target index int64 [1] = 0)."""

Outputs = Mapping[str, Any]
"""One model output: the last decoder layer's tensors plus ``aux_outputs`` (a list of dicts)."""

BatchT = TypeVar("BatchT")


# ---------------------------------------------------------------- elementwise terms


def focal_term(logits: Tensor, targets: Tensor, alpha: float = FOCAL_ALPHA) -> Tensor:
    """Sigmoid focal loss per element (RetinaNet); ``alpha < 0`` turns the class weighting off.

    Args:
        logits: [...] logits.
        targets: [...] (same shape) in {0, 1}.

    Returns:
        [...] alpha_t · (1 − p_t)^2 · BCE.
    """
    prob = logits.sigmoid()
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = loss * (1 - p_t) ** FOCAL_GAMMA
    if alpha < 0:
        return loss
    return (alpha * targets + (1 - alpha) * (1 - targets)) * loss


def focal_class_cost(logits: Tensor) -> Tensor:
    """The matching cost of calling an element positive: focal positive minus focal negative
    term, with the +1e-8 inside the logarithms (alpha 0.25, gamma 2). [...] -> [...]."""
    return focal_class_cost_of_probs(logits.sigmoid())


def focal_class_cost_of_probs(prob: Tensor) -> Tensor:
    """``focal_class_cost`` of probabilities σ(logit) instead of logits. [...] -> [...]."""
    positive = FOCAL_ALPHA * (1 - prob) ** FOCAL_GAMMA * -(prob + CLASS_COST_EPS).log()
    negative = (1 - FOCAL_ALPHA) * prob**FOCAL_GAMMA * -(1 - prob + CLASS_COST_EPS).log()
    return positive - negative


def dice_score(logits: Tensor, targets: Tensor) -> Tensor:
    """Smoothed dice coefficient (2·Σσ(x)·y + 1) / (Σσ(x) + Σy + 1) over the last dimension.

    Args:
        logits: [..., P] mask logits.
        targets: [..., P] in [0, 1], broadcastable against ``logits``.

    Returns:
        [...] (the broadcast of the leading dimensions).
    """
    prob = logits.sigmoid()
    overlap = (prob * targets).sum(-1)
    return (2 * overlap + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x0, y0, x1, y1)."""
    center, size = boxes[..., :2], boxes[..., 2:]
    return torch.cat((center - 0.5 * size, center + 0.5 * size), dim=-1)


def _area(top_left: Tensor, bottom_right: Tensor) -> Tensor:
    """[..., 2] corners -> [...] area, zero when the corners cross."""
    extent = (bottom_right - top_left).clamp(min=0)
    return extent[..., 0] * extent[..., 1]


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Elementwise GIoU of xyxy boxes with upstream's +1e-6 in both quotients:
    iou = (inter + ε) / (union + ε), giou = iou − (enclosing − union + ε) / (enclosing + ε).
    A degenerate (all-zero) box is allowed.

    Args:
        boxes1: [..., 4] xyxy.
        boxes2: [..., 4] xyxy, broadcastable against ``boxes1``.

    Returns:
        [...] the broadcast shape.
    """
    size1 = boxes1[..., 2:] - boxes1[..., :2]
    size2 = boxes2[..., 2:] - boxes2[..., :2]
    inter = _area(
        torch.maximum(boxes1[..., :2], boxes2[..., :2]),
        torch.minimum(boxes1[..., 2:], boxes2[..., 2:]),
    )
    union = size1[..., 0] * size1[..., 1] + size2[..., 0] * size2[..., 1] - inter
    enclosing = _area(
        torch.minimum(boxes1[..., :2], boxes2[..., :2]),
        torch.maximum(boxes1[..., 2:], boxes2[..., 2:]),
    )
    iou = (inter + GIOU_EPS) / (union + GIOU_EPS)
    return iou - (enclosing - union + GIOU_EPS) / (enclosing + GIOU_EPS)


def box_terms(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """L1 distance and 1 − GIoU of (cx, cy, w, h) boxes.

    Args:
        pred: [..., 4].
        target: [..., 4], broadcastable against ``pred``.

    Returns:
        (Σ over the 4 coordinates of |pred − target|, 1 − GIoU), each [...].
    """
    l1 = (pred - target).abs().sum(-1)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(target))
    return l1, 1 - giou


# ---------------------------------------------------------------- matching


def frame_mean(values: Tensor, frames: Tensor) -> Tensor:
    """Mean over the selected frames of each clip; 0 for a clip without any.

    Args:
        values: [B, T, Q].
        frames: [B, T] bool.

    Returns:
        [B, Q].
    """
    kept = torch.where(frames.unsqueeze(-1), values, torch.zeros_like(values))
    count = frames.sum(1, keepdim=True).clamp(min=1)
    return kept.sum(1) / count


def class_cost(logits: Tensor, frames: Tensor) -> Tensor:
    """The class term of the matching cost: ``focal_class_cost`` averaged over the selected frames.

    Args:
        logits: [B, T, Q] "referred" logits.
        frames: [B, T] bool.

    Returns:
        [B, Q].
    """
    return frame_mean(focal_class_cost(logits), frames)


def box_costs(pred: Tensor, target: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
    """The box terms of the matching cost: L1 and −GIoU averaged over the selected frames.

    Args:
        pred: [B, T, Q, 4] cxcywh.
        target: [B, T, 4] cxcywh (all zeros where absent).
        frames: [B, T] bool.

    Returns:
        (L1 [B, Q], −GIoU [B, Q]).
    """
    l1, one_minus_giou = box_terms(pred, target.unsqueeze(2))
    return frame_mean(l1, frames), frame_mean(one_minus_giou - 1, frames)


@dataclass(frozen=True)
class Matching:
    """One decoder layer's matching of the batch.

    Attributes:
        cost: [B, Q] the total cost C = Σ weight · term that was minimised (upstream's [Q, 1] per clip).
        terms: name -> [B, Q] unweighted term, in the form that enters C with its positive weight
            (a dice term is −dice; a GIoU term is −GIoU). SOC, as upstream, leaves out the terms
            whose weight is 0.
    """

    cost: Tensor
    terms: dict[str, Tensor]

    @property
    def queries(self) -> Tensor:
        """[B] int64: each clip's matched query (the first minimum on ties)."""
        return self.cost.argmin(dim=1)

    @property
    def indices(self) -> Indices:
        """Upstream's per clip (src, tgt) pair: (query [1], 0 [1])."""
        target = torch.zeros(1, dtype=torch.int64, device=self.cost.device)
        return [(query.reshape(1), target) for query in self.queries]


def weighted_matching(terms: dict[str, Tensor], weights: Mapping[str, float]) -> Matching:
    """``Matching`` of C = Σ weights[name] · terms[name] ([B, Q] each, at least one)."""
    weighted = [weights[name] * term for name, term in terms.items()]
    return Matching(cost=torch.stack(weighted).sum(0), terms=terms)


# ---------------------------------------------------------------- losses


def referred_class_loss(
    logits: Tensor, visible: Tensor, queries: Tensor, normaliser: float, alpha: float = FOCAL_ALPHA
) -> Tensor:
    """Focal loss of the "referred" logits: target 1 for the matched query of each visible frame,
    0 elsewhere (absent frames: every query is a negative); summed over every element.

    Args:
        logits: [B, T, Q].
        visible: [B, T] bool.
        queries: [B] int64, the matched query of each clip.
        normaliser: the (all-reduced) target count.

    Returns:
        [] Σ focal / normaliser.
    """
    matched = F.one_hot(queries, logits.shape[-1]).to(logits.dtype)
    targets = visible.unsqueeze(-1).to(logits.dtype) * matched.unsqueeze(1)
    return focal_term(logits, targets, alpha).sum() / normaliser


def box_losses(
    pred: Tensor, target: Tensor, frames: Tensor, normaliser: float
) -> tuple[Tensor, Tensor]:
    """L1 and GIoU losses of the matched boxes, summed over the selected frames.

    Args:
        pred: [N, 4] cxcywh, one row per (clip, frame).
        target: [N, 4] cxcywh.
        frames: [N] bool, the rows that count.
        normaliser: the (all-reduced) target count.

    Returns:
        (Σ L1 / normaliser, Σ (1 − GIoU) / normaliser), each [].
    """
    l1, one_minus_giou = box_terms(pred, target)
    zero = torch.zeros_like(l1)
    return (
        torch.where(frames, l1, zero).sum() / normaliser,
        torch.where(frames, one_minus_giou, zero).sum() / normaliser,
    )


def mask_losses(logits: Tensor, targets: Tensor, normaliser: float) -> tuple[Tensor, Tensor]:
    """Focal (mean over the pixels of an item) and dice losses, summed over the items.

    Args:
        logits: [N, P] mask logits, one row per item (a clip or a frame).
        targets: [N, P] in {0, 1}.
        normaliser: the (all-reduced) target count.

    Returns:
        (focal, dice), each [].
    """
    focal = focal_term(logits, targets).mean(-1).sum() / normaliser
    dice = (1 - dice_score(logits, targets)).sum() / normaliser
    return focal, dice


def average_count(count: float, device: torch.device) -> float:
    """The loss normaliser: ``count`` summed over the processes of the default process group and
    divided by their number (when torch.distributed is initialized), clamped to >= 1.

    Every process must call it (it is a collective).
    """
    total = torch.tensor([float(count)], dtype=torch.float32, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total)
        total = total / dist.get_world_size()
    return float(total.clamp(min=1).item())


# ---------------------------------------------------------------- targets


def pad_masks(masks: Sequence[Tensor], divisor: int = 1) -> Tensor:
    """Zero-pad masks to their common largest (h, w), rounded up to a multiple of ``divisor``.

    Args:
        masks: N tensors [..., h_i, w_i] with equal leading dimensions.

    Returns:
        [N, ..., H, W] of the masks' dtype; the padding is 0 (background).
    """
    height = max(m.shape[-2] for m in masks)
    width = max(m.shape[-1] for m in masks)
    height, width = (-(-height // divisor) * divisor, -(-width // divisor) * divisor)
    padded = masks[0].new_zeros((len(masks), *masks[0].shape[:-2], height, width))
    for slot, mask in zip(padded, masks, strict=True):
        slot[..., : mask.shape[-2], : mask.shape[-1]] = mask
    return padded


def clip_length(clips: Sequence[Clip]) -> int:
    """The common number of frames T of a non-empty batch of clips (ValueError otherwise)."""
    lengths = {int(clip.frames.shape[0]) for clip in clips}
    if len(lengths) != 1:  # also an empty batch
        raise ValueError(f"a batch needs clips of one length, got lengths {sorted(lengths)}")
    return lengths.pop()


# ---------------------------------------------------------------- the criterion


def layer_weights(base: Mapping[str, float], aux_loss: bool, dec_layers: int) -> dict[str, float]:
    """The weight dict: ``base`` for the last layer, then ``<name>_<i>`` for the auxiliary layers
    i = 0 .. dec_layers − 2 when ``aux_loss``."""
    weights = dict(base)
    if aux_loss:
        for layer in range(dec_layers - 1):
            weights.update({f"{name}_{layer}": value for name, value in base.items()})
    return weights


class Criterion(ABC, Generic[BatchT]):
    """A set criterion: match each decoder layer's queries to the targets, then score the matches.

    ``__call__(outputs, targets)`` returns the unweighted losses (upstream's names and order: the
    last layer's, then each auxiliary layer's with suffix ``_i``) and the indices
    ``{"final": Indices, "aux": [Indices per auxiliary layer]}``. Inputs are never modified.
    """

    def __init__(self, base_weights: Mapping[str, float], aux_loss: bool, dec_layers: int) -> None:
        self.aux_loss = aux_loss
        self.dec_layers = dec_layers
        self.weight_dict: dict[str, float] = layer_weights(base_weights, aux_loss, dec_layers)

    def __call__(
        self, outputs: Outputs, targets: Any, normaliser: float | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``normaliser``: what the losses are divided by; None: upstream's, this batch's
        ``count`` averaged over the processes (``average_count``, a collective). The training
        engine passes the count of the whole global batch when it accumulates gradients."""
        layers = self._layers(outputs)
        if normaliser is None:
            normaliser = average_count(self.count(targets), layers[0]["pred_masks"].device)
        batch = self._prepare(targets, layers[0], normaliser)
        losses: dict[str, Tensor] = {}
        indices: dict[str, Any] = {"final": None, "aux": []}
        for position, layer in enumerate(layers):
            with torch.no_grad():
                matching = self._match(layer, batch)
            layer_losses = self._layer_losses(layer, batch, matching.queries)
            if position == 0:
                losses.update(layer_losses)
                indices["final"] = matching.indices
            else:
                losses.update(
                    {f"{name}_{position - 1}": value for name, value in layer_losses.items()}
                )
                indices["aux"].append(matching.indices)
        return losses, indices

    def match(self, layer: Mapping[str, Tensor], targets: Any) -> Matching:
        """The matching of one decoder layer's outputs (without ``aux_outputs``), with its costs."""
        with torch.no_grad():
            return self._match(layer, self._prepare(targets, layer, 1.0))

    def total(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Σ weight_dict[name] · loss over ``losses`` (what ``backward()`` runs on)."""
        missing = sorted(set(losses) - set(self.weight_dict))
        if missing:
            raise ConfigError(
                f"no weight for the losses {missing} (weights: {sorted(self.weight_dict)})"
            )
        return torch.stack([self.weight_dict[name] * loss for name, loss in losses.items()]).sum()

    def _layers(self, outputs: Outputs) -> list[Mapping[str, Tensor]]:
        """[last layer, aux layer 0, ...]: the auxiliary ones only with ``aux_loss``, and then
        exactly dec_layers − 1 of them."""
        last = {key: value for key, value in outputs.items() if key != "aux_outputs"}
        if not self.aux_loss:
            return [last]
        aux = list(outputs.get("aux_outputs", []))
        if len(aux) != self.dec_layers - 1:
            raise ValueError(
                f"aux_loss with dec_layers={self.dec_layers} needs {self.dec_layers - 1} aux_outputs, "
                f"got {len(aux)}"
            )
        return [last, *aux]

    @abstractmethod
    def targets(self, clips: Sequence[Clip]) -> Any:
        """Upstream's target structure for B clips of equal length."""

    @abstractmethod
    def count(self, targets: Any) -> int:
        """This batch's number of targets, before averaging over processes (upstream's
        num_boxes / num_masks)."""

    @abstractmethod
    def _prepare(self, targets: Any, layer: Mapping[str, Tensor], normaliser: float) -> BatchT:
        """The targets as batched tensors on the device of ``layer`` (once per call)."""

    @abstractmethod
    def _match(self, layer: Mapping[str, Tensor], batch: BatchT) -> Matching:
        """One layer's matching (always called under ``torch.no_grad``)."""

    @abstractmethod
    def _layer_losses(
        self, layer: Mapping[str, Tensor], batch: BatchT, queries: Tensor
    ) -> dict[str, Tensor]:
        """One layer's unweighted losses given the matched query of each clip ([B] int64)."""


def settings_from_upstream(
    build: Callable[..., Any], names: Mapping[str, str], args: Mapping[str, Any], **extra: Any
) -> Any:
    """``build(**{field: float(args[upstream name])}, **extra)``: settings from upstream's option
    names (``names``: our field -> upstream option)."""
    missing = sorted(option for option in names.values() if option not in args)
    if missing:
        raise ConfigError(f"upstream options {missing} are missing")
    return build(**{field: float(args[option]) for field, option in names.items()}, **extra)
