"""Post-processing of the video-level RVOS models (ReferFormer, MUTR): one query per video.

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d, ``ReferFormer/inference_ytvos*.py``,
``MUTR/inference_ytvos.py``, ``MUTR/infer_ytvos_ensemble.py``, ``ptf.py``): sigmoid of the logits,
mean over time, max over classes, argmax over queries (first on ties). The chosen query's per-frame
score (class 0) is the ``class_info``; its mask logits are resized bilinearly (align_corners False,
no antialias, no crop of the patch padding) straight to the original frame size; probabilities are
their float32 sigmoid (foreground > 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class VideoPrediction:
    """query_index: the chosen query; scores_per_query [Q, K]; class_info [T] float32;
    mask_logits [T, H0, W0] float32 at the original size; probs = sigmoid(mask_logits)."""

    query_index: int
    scores_per_query: Tensor
    class_info: Tensor
    mask_logits: Tensor
    probs: Tensor


def select_query(pred_logits: Tensor) -> tuple[int, Tensor, Tensor]:
    """pred_logits [T, Q, K] -> (query index, scores per query [Q, K], per-frame scores [T])."""
    scores = pred_logits.float().sigmoid()
    per_query = scores.mean(0)
    query = int(per_query.max(-1).values.argmax())
    return query, per_query, scores[:, query, 0]


def postprocess(
    pred_logits: Tensor, pred_masks: Tensor, original_size: tuple[int, int]
) -> VideoPrediction:
    """pred_logits [T, Q, K], pred_masks [T, Q, h, w] of one video; original_size (H0, W0)."""
    query, per_query, class_info = select_query(pred_logits)
    logits = pred_masks[:, query].float()[None]
    logits = F.interpolate(logits, size=original_size, mode="bilinear", align_corners=False)[0]
    return VideoPrediction(query, per_query, class_info, logits, logits.sigmoid())
