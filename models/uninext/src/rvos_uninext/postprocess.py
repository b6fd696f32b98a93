"""UNINEXT's per-frame RVOS post-processing (upstream ``UNINEXT_VID.inference_rvos``).

Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85d,
``UNINEXT/projects/UNINEXT/uninext/uninext_vid.py``. Per frame, independently: score of every query
= sqrt(sigmoid(class logit) * sigmoid(IoU logit)); the top-1 query's mask logits are bilinearly
upsampled x4 (align_corners=False) to the padded input size, passed through a sigmoid, cropped to
the resized frame and **nearest**-resized to the original frame size (``F.interpolate`` 'nearest':
floor of the scaled index). The competition copy returns these probabilities (under the name
``mask_logits``) and the top-1 score per frame (``class_info``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def query_scores(pred_logits: Tensor, pred_boxious: Tensor) -> Tensor:
    """[N, Q, 1] class and IoU logits -> [N, Q] scores sqrt(sigmoid(cls) * sigmoid(iou))."""
    return torch.sqrt(pred_logits[..., 0].sigmoid() * pred_boxious[..., 0].sigmoid())


def top_query(scores: Tensor) -> tuple[Tensor, Tensor]:
    """[N, Q] -> (best score [N], its query index [N]) per frame (``torch.topk``, k = 1)."""
    values, indices = torch.topk(scores, 1, dim=1)
    return values[:, 0], indices[:, 0]


def mask_probabilities(
    mask_logits: Tensor, image_sizes: Sequence[tuple[int, int]], original_size: tuple[int, int]
) -> Tensor:
    """Top-1 mask logits [N, h4, w4] at stride 4 -> float32 probabilities [N, H, W] (original size)."""
    h4, w4 = mask_logits.shape[-2:]
    up = F.interpolate(
        mask_logits[:, None].float(), size=(4 * h4, 4 * w4), mode="bilinear", align_corners=False
    )
    probs = up.sigmoid()
    out = [
        F.interpolate(probs[i : i + 1, :, :h, :w], size=tuple(original_size), mode="nearest")[0, 0]
        for i, (h, w) in enumerate(image_sizes)
    ]
    return torch.stack(out)
