"""The contract between the training engine (rvos_train) and the model packages.

A model that can be trained declares ``ModelEntry.training = TrainingHooks(...)``: how a batch of
augmented clips runs through the model in training mode (its outputs in the layout its criterion
reads, upstream's layout), which criterion family scores them, and which parameter group each
parameter belongs to. The engine owns everything else: data, optimizer, schedule, precision,
distribution, checkpoints and logs.

The Video-Swin models (ReferFormer, MUTR, SOC) share one way of running a batch
(``forward_clips``): the clips are zero-padded to one size with a padding mask, as upstream's
collate functions do (``nested_tensor_from_videos_list``), the captions are tokenized together
(upstream's one tokenizer call, padding to the longest), and then each clip runs through the model
on its own, with its padded frames, its mask, its row of the token batch and its own (H, W). No
layer of these models couples the clips of a batch (no batch norm; every attention, GroupNorm and
mask head is per clip), so this gives upstream's batched values; the per-clip outputs are
concatenated along each output's batch axis. ``LANGUAGE_QUERY_HOOKS`` are ReferFormer's and MUTR's
hooks: their training code is the same upstream (``collate_fn``, ``main.py`` / ``train.py``
parameter groups, criterion).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from rvos_nn.pretrained_init import init_from_pretrained, init_like_upstream
from rvos_nn.text import ROBERTA_TOKENIZER, Tokenizer, TokenizerSpec, Tokens

if TYPE_CHECKING:
    from rvos_nn.layers.video_text import VideoTextModel

ParamGroup = Literal["backbone", "text_encoder", "linear_proj", "rest"]
"""Learning-rate groups: the visual backbone, the text encoder, the deformable attention's
``reference_points`` / ``sampling_offsets`` (upstream's ``lr_linear_proj_names``, at ``lr x
lr_linear_proj_mult``; ReferFormer and MUTR only) and everything else."""


@dataclass(frozen=True)
class Clip:
    """One augmented training sample: a clip of one video (or a one-frame pseudo-video) and one
    expression.

    Attributes:
        frames: float32 [T, 3, H, W], normalised with the ImageNet mean and std.
        masks: bool [T, H, W], the referred object (MeViS: the union of the expression's objects).
        boxes: float32 [T, 4], normalised (cx, cy, w, h) of ``masks``; all zeros where absent.
        valid: int32 [T], 1 where the object is visible.
        caption: the expression (after augmentation: a flipped clip says "right" for "left").
        frame_ids: int64 [T], each frame's index in its video.
        orig_size: (H0, W0) of the video's frames before augmentation.
        source: where it came from, for messages ("refytvos/<video>/<exp_id>").
    """

    frames: Tensor
    masks: Tensor
    boxes: Tensor
    valid: Tensor
    caption: str
    frame_ids: Tensor
    orig_size: tuple[int, int]
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) after augmentation."""
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])


TrainForward = Callable[[nn.Module, Tokenizer, Sequence[Clip]], dict[str, Any]]


@dataclass(frozen=True)
class TrainingHooks:
    """What a trainable model declares in its ModelEntry.

    Attributes:
        criterion: the loss family in rvos_train.losses that scores ``forward``'s outputs
            ("referformer" for ReferFormer and MUTR, "soc").
        forward: (model in train mode, its tokenizer, B clips) -> the model's training outputs in
            the layout of that criterion (the fixtures' ``outputs``: last layer + ``aux_outputs``).
        param_group: parameter name -> its ParamGroup (the learning-rate groups upstream
            builds); every parameter of the model has one.
        decoder_layers: the model -> its number of decoder layers (the criterion scores each).
        checkpoint_container: the key upstream's training saves the weights under ("model",
            "model_state_dict"): the engine's checkpoints use it, so that they are the
            competition files' layout.
        upstream_init: gives the parts that no pretrained file covers upstream's initialisation
            (a run from pretrained or random weights calls it first).
        tokenizer: where the model's tokenizer lives under PRETRAINED and how it is called.
        no_weight_decay: (parameter name, ndim) -> True for parameters upstream trains without
            weight decay (detectron2's norm / embedding rules); None: all decay.
        pretrained_init: (model, PRETRAINED folder) -> its report: loads the public pretrained
            files into the model (``init.source = "pretrained"``; default: the Video-Swin models'
            Kinetics backbone + roberta-base).
    """

    criterion: str
    forward: TrainForward
    param_group: Callable[[str], ParamGroup]
    decoder_layers: Callable[[nn.Module], int]
    checkpoint_container: str
    upstream_init: Callable[[nn.Module], object]
    tokenizer: TokenizerSpec = ROBERTA_TOKENIZER
    no_weight_decay: Callable[[str, int], bool] | None = None
    pretrained_init: Callable[[nn.Module, Path], Any] = init_from_pretrained


# ---------------------------------------------------------------------------------------------
# Running a batch of clips through a Video-Swin model (see the module docstring)


def clip_length(clips: Sequence[Clip]) -> int:
    """The common T of the clips; ValueError for an empty batch or unequal lengths."""
    lengths = {int(clip.frames.shape[0]) for clip in clips}
    if len(lengths) != 1:
        raise ValueError(f"a batch needs clips of one length, got {sorted(lengths) or 'none'}")
    return lengths.pop()


def pad_clips(clips: Sequence[Clip], size_divisibility: int = 1) -> tuple[Tensor, Tensor]:
    """Zero-pad the clips' frames to one batch (upstream ``nested_tensor_from_videos_list``).

    Returns frames [B, T, 3, Hp, Wp] and mask bool [B, T, Hp, Wp] (True on padding), where
    (Hp, Wp) is the largest (H, W) of the batch rounded up to a multiple of ``size_divisibility``.
    """
    t = clip_length(clips)
    hp, wp = (
        -(-max(clip.size[axis] for clip in clips) // size_divisibility) * size_divisibility
        for axis in (0, 1)
    )
    first = clips[0].frames
    frames = first.new_zeros((len(clips), t, first.shape[1], hp, wp))
    mask = torch.ones((len(clips), t, hp, wp), dtype=torch.bool, device=first.device)
    for b, clip in enumerate(clips):
        h, w = clip.size
        frames[b, :, :, :h, :w] = clip.frames
        mask[b, :, :h, :w] = False
    return frames, mask


def concat_clips(
    per_clip: Sequence[Sequence[Mapping[str, Tensor]]], batch_axes: Mapping[str, int] | None = None
) -> list[dict[str, Tensor]]:
    """Per clip, per decoder layer output dicts -> per layer one dict of the whole batch: each key
    concatenated along its batch axis (``batch_axes``, default 0). A tensor that several keys or
    layers of a clip share stays one tensor in the batch too."""
    axes = batch_axes or {}
    joined: dict[tuple[int, ...], Tensor] = {}
    layers = []
    for layer in zip(*per_clip, strict=True):
        out = {}
        for key in layer[0]:
            parts = [clip[key] for clip in layer]
            ident = tuple(id(part) for part in parts)
            if ident not in joined:
                joined[ident] = torch.cat(parts, dim=axes.get(key, 0))
            out[key] = joined[ident]
        layers.append(out)
    return layers


def forward_clips(
    model: VideoTextModel,
    tokenizer: Tokenizer,
    clips: Sequence[Clip],
    *,
    size_divisibility: int,
    batch_axes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A batch of clips through ``model`` in its current mode (see the module docstring).

    Each clip's predictions come from ``model.layer_outputs`` (one dict per decoder layer, batch
    axis of size 1). Returns upstream's training output: the last decoder layer's predictions plus
    ``aux_outputs``, the earlier layers' (first to second-to-last), each key concatenated over the
    clips along ``batch_axes[key]`` (default 0).
    """
    device = next(model.parameters()).device
    frames, mask = (x.to(device) for x in pad_clips(clips, size_divisibility))
    tokens = tokenizer([clip.caption for clip in clips]).to(device)
    per_clip = [
        model.layer_outputs(
            model.encode_video(frames[b], mask[b]),
            _encode_row(model, tokens, b),
            torch.tensor(clip.size, dtype=torch.int64, device=device),
        )
        for b, clip in enumerate(clips)
    ]
    layers = concat_clips(per_clip, batch_axes)
    return {**layers[-1], "aux_outputs": layers[:-1]}


def _encode_row(model: VideoTextModel, tokens: Tokens, row: int) -> Any:
    """The text features of one caption of the batch (keeping the batch's padding)."""
    return model.encode_text(tokens.input_ids[row : row + 1], tokens.attention_mask[row : row + 1])


# ---------------------------------------------------------------------------------------------
# ReferFormer and MUTR (the same training code upstream)

LANGUAGE_QUERY_SIZE_DIVISIBILITY = 32
"""Upstream's ``collate_fn`` pads a batch to a multiple of 32 (ReferFormer and MUTR)."""
LANGUAGE_QUERY_GROUPS: tuple[tuple[ParamGroup, tuple[str, ...]], ...] = (
    ("backbone", ("backbone.0",)),
    ("text_encoder", ("text_encoder",)),
    ("linear_proj", ("reference_points", "sampling_offsets")),
)
"""Upstream's ``lr_backbone_names``, ``lr_text_encoder_names``, ``lr_linear_proj_names`` (matched
as substrings of the parameter name, as ``match_name_keywords`` does)."""


def language_query_param_group(name: str) -> ParamGroup:
    """ReferFormer's and MUTR's group of a parameter: the first of LANGUAGE_QUERY_GROUPS whose
    keywords occur in ``name``, else "rest" (no parameter of either model matches two)."""
    for group, keywords in LANGUAGE_QUERY_GROUPS:
        if any(keyword in name for keyword in keywords):
            return group
    return "rest"


def language_query_forward(
    model: nn.Module, tokenizer: Tokenizer, clips: Sequence[Clip]
) -> dict[str, Any]:
    """ReferFormer's and MUTR's training forward: ``forward_clips`` with their padding to a
    multiple of 32; outputs [B, T, Q, ...] (``pred_logits``, ``pred_boxes``, ``pred_masks``)."""
    return forward_clips(
        model,  # type: ignore[arg-type]
        tokenizer,
        clips,
        size_divisibility=LANGUAGE_QUERY_SIZE_DIVISIBILITY,
    )


LANGUAGE_QUERY_HOOKS = TrainingHooks(
    criterion="referformer",
    forward=language_query_forward,
    param_group=language_query_param_group,
    decoder_layers=lambda model: model.config.dec_layers,
    checkpoint_container="model",
    upstream_init=init_like_upstream,
)
"""The training hooks of ReferFormer and MUTR (one criterion, one forward, one grouping)."""
