"""SOC's training hooks (rvos_train): the train-mode forward over a batch of clips, the criterion
family and the learning-rate groups, as the competition's joint training does them.

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
``soc_test/``): ``jointtrainer.py`` (parameter groups, AdamW, MultiStepLR),
``misc.nested_tensor_from_videos_list`` (a batch zero-padded to its largest frame size with no
rounding, time-major), ``models/mttr.py`` (the train-mode forward with ``aux_loss``),
``configs/joint.yaml``. The per-clip predictions are ``SOC.layer_outputs``; the batch runs clip by
clip (rvos_nn.training.forward_clips).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from rvos_nn.pretrained_init import init_like_upstream
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip, ParamGroup, TrainingHooks, forward_clips

SIZE_DIVISIBILITY = 1
"""SOC's collator pads a batch to its largest (H, W), not to a multiple of anything."""
BATCH_AXES = {"pred_masks": 1, "pred_boxes": 1, "pred_is_referred": 1}
"""Time-major outputs [T, B, ...]; ``pred_logit`` and ``text_sentence_feature`` are batch-first."""


def param_group(name: str) -> ParamGroup:
    """``jointtrainer.py``'s groups: a name containing "VLA" stays in the main group (a rule for
    an alignment module the competition model does not build), else "backbone" in the name ->
    backbone, "text_encoder" -> text encoder, anything else (deformable attention's sampling
    offsets and reference points included: SOC has no separate group for them) -> rest."""
    if "VLA" in name:
        return "rest"
    if "backbone" in name:
        return "backbone"
    if "text_encoder" in name:
        return "text_encoder"
    return "rest"


def forward(model: nn.Module, tokenizer: Tokenizer, clips: Sequence[Clip]) -> dict[str, Any]:
    """B clips -> upstream's training output, time-major: ``pred_masks`` [T, B, Q, h, w] (h, w =
    ceil of the padded size / 4), ``pred_boxes`` [T, B, Q, 4], ``pred_is_referred`` [T, B, Q, 1],
    ``pred_logit`` [B, Q, C], ``text_sentence_feature`` [B, C] and ``aux_outputs`` (decoder layers
    0..L-2, the same keys; ``text_sentence_feature`` is one tensor in every layer)."""
    return forward_clips(
        model,  # type: ignore[arg-type]
        tokenizer,
        clips,
        size_divisibility=SIZE_DIVISIBILITY,
        batch_axes=BATCH_AXES,
    )


HOOKS = TrainingHooks(
    criterion="soc",
    forward=forward,
    param_group=param_group,
    decoder_layers=lambda model: model.config.transformer.dec_layers,
    checkpoint_container="model_state_dict",
    upstream_init=init_like_upstream,
)
"""SOC's hooks; its checkpoints are jointtrainer.py's ``{'model_state_dict': ...}``."""
