"""Per-frame losses of AOT / DeAOT training: bootstrapped (top-k) cross-entropy and soft Jaccard,
0.5 each, computed per sample on the channels of its live ids only.

Papers: see ``rvos_vos.training.schedule``; the bootstrapped cross-entropy follows DeepLab's
hard-pixel mining, the soft Jaccard is the Tversky loss with alpha = beta = 1 (Salehi et al., 2017).
Upstream: yoxu515/aot-benchmark @ 601c138 ``networks/layers/loss.py`` (``CrossEntropyLoss``,
``SoftJaccordLoss``, ``tversky_loss``) and ``networks/engines/aot_engine.py``
(``calculate_current_loss``, ``_init_losses``).

Semantics (the fixture README's): logits are upsampled bilinearly (align_corners False) to the label
size and cut to channels 0..obj_num. Label 255 is ignored: cross-entropy 0 there, but the pixel
still counts in the k of the top-k; removed from the Jaccard. The Jaccard averages over the classes
present in the remaining labels (background included); with none present it is 0.
Differences: the per-class Jaccard terms are computed at once on a one-hot matrix instead of a
Python loop (same sums, fp32 summation order may differ at the 1e-7 level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_LABEL = 255
CE_WEIGHT = 0.5
JACCARD_WEIGHT = 0.5
JACCARD_EPS = 1e-6


@dataclass(frozen=True)
class FrameLosses:
    """Per-sample losses of one frame, each [B]: ``total = 0.5·ce + 0.5·jaccard``."""

    ce: Tensor
    jaccard: Tensor
    total: Tensor


def bootstrapped_cross_entropy(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Mean of the ``k`` largest pixel cross-entropies.

    Args:
        logits: [C, H, W] float; labels: [H, W] int64 in 0..C-1 or 255 (loss 0, still a candidate).
        k: pixels kept, 1..H·W.

    Returns:
        scalar.
    """
    pixel = F.cross_entropy(logits[None], labels[None], ignore_index=IGNORE_LABEL, reduction="none")
    return torch.topk(pixel.flatten(), k).values.mean()


def soft_jaccard(logits: Tensor, labels: Tensor) -> Tensor:
    """Soft Jaccard loss ``1 - I / (I + FP + FN + 1e-6)`` averaged over the present classes.

    Args:
        logits: [C, H, W] float; labels: [H, W] int64 in 0..C-1 or 255 (pixel dropped).

    Returns:
        scalar; 0 when no class is present.
    """
    valid = labels != IGNORE_LABEL
    probs = torch.softmax(logits, dim=0)[:, valid]  # [C, P]
    classes = torch.arange(logits.shape[0], device=labels.device)[:, None]
    truth = (labels[valid][None] == classes).to(probs.dtype)  # [C, P]
    present = truth.sum(dim=1) > 0
    if not present.any():
        return logits.new_zeros(())
    inter = (probs * truth).sum(dim=1)
    false_pos = (probs * (1 - truth)).sum(dim=1)
    false_neg = ((1 - probs) * truth).sum(dim=1)
    per_class = 1 - inter / (inter + false_pos + false_neg + JACCARD_EPS)
    return per_class[present].mean()


def frame_losses(
    logits: Tensor, labels: Tensor, obj_nums: Sequence[int], topk_fraction: float
) -> FrameLosses:
    """Losses of one frame for every sample.

    Args:
        logits: [B, num_ids, h, w] id logits (un-shuffled); upsampled to the label size here.
        labels: [B, H, W] int ids or 255.
        obj_nums: per sample, the largest live id (channels 0..obj_num enter the loss).
        topk_fraction: fraction of the H·W pixels the cross-entropy keeps (truncated to int).

    Returns:
        FrameLosses of [B] tensors.
    """
    size = tuple(labels.shape[-2:])
    upsampled = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    k = int(topk_fraction * size[0] * size[1])
    ce, jaccard = [], []
    for sample, obj_num in enumerate(obj_nums):
        live = upsampled[sample, : obj_num + 1]
        target = labels[sample].long()
        ce.append(bootstrapped_cross_entropy(live, target, k))
        jaccard.append(soft_jaccard(live, target))
    ce_t, jaccard_t = torch.stack(ce), torch.stack(jaccard)
    return FrameLosses(ce_t, jaccard_t, CE_WEIGHT * ce_t + JACCARD_WEIGHT * jaccard_t)
