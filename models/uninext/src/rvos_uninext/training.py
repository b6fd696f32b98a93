"""UNINEXT's referring training forward: (key, reference) frame pairs -> the outputs its criterion
reads (rvos_train.losses.uninext, family "uninext"), and the training hooks.

Paper: Yan et al., "Universal Instance Perception as Object Discovery and Retrieval" (UNINEXT,
CVPR 2023); Zhang et al., "DINO" (ICLR 2023) for the contrastive denoising queries. Upstream:
RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6, folder ``UNINEXT/``
(identical to MasterBin-IIAU/UNINEXT), under ``projects/UNINEXT/``: ``uninext/models/ddetrs_vid_dn.py``
(``coco_forward_vis``: key frames with denoising queries, reference frames without, every decoder
layer's heads, the reid head on detached features), ``uninext/models/ddetrs_dn.py``
(``prepare_for_cdn``, ``dn_post_process``, ``forward_mask_head_train``), ``uninext/models/
pos_neg_select.py`` (``select_pos_neg``: the deformable reid head's inputs), ``train_net.py``
(``build_optimizer``: the learning-rate groups, weight decay on every parameter) and
``configs/video_joint_r50.yaml`` / ``single_task_rvos.yaml`` (DN_NUMBER 100, BOX_NOISE_SCALE 1.0,
DYNAMIC_LABEL_ENC, DETACH_REID, FREEZE_TEXT_ENCODER).

A clip is (key frame, reference frame) with one expression. The 2B frames are padded together to
a multiple of 32 (upstream's ``nested_tensor_from_tensor_list``); the key frames run the
transformer with the denoising queries in front of the proposals, the reference frames without
them. The reference pass feeds only the reid loss, through detached features and no-gradient
scores, so it runs without autograd here (the same values and gradients as upstream's pass).

Differences from upstream: the matching runs in the criterion, which asks ``mask_logits`` for the
matched queries (upstream matches inside the forward); upstream's ``0.0 * x`` terms that only keep
DDP from complaining about unused parameters (the transformer's ``resizer``, the reid head) are not
added, so ``detr.detr.transformer.resizer`` gets no gradient and no weight decay (upstream: zero
gradient, decayed); label noise is off, as upstream's ``DYNAMIC_LABEL_ENC`` makes it (every
denoising query's content is the clip's pooled text through ``detr.resizer``); the expression is
cleaned (``clean_string``) here rather than in the data mapper.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rvos_nn.layers.box import inverse_sigmoid
from rvos_nn.layers.ms_deform_attn import MSDeformAttn
from rvos_nn.text import UNINEXT_BERT_TOKENIZER, Tokenizer, Tokens
from rvos_nn.training import Clip, ParamGroup, TrainingHooks
from rvos_uninext.model import Uninext, VisualFeatures
from rvos_uninext.preprocess import FrameBatch, clean_expression, pad_batch
from rvos_uninext.pretrained_init import init_from_pretrained
from rvos_uninext.transformer import DenoisingQueries, TransformerOutput, average_text
from rvos_uninext.vl_fusion import BiMultiHeadAttention

CLIP_FRAMES = 2
"""A training clip is (key frame, reference frame)."""
PRIOR_PROBABILITY = 0.01
"""Upstream's focal-loss prior of the class and proposal logits at initialisation."""

PairIndices = list[tuple[Tensor, Tensor]]
"""Per clip (query index int64 [N] among the Q proposals, object index int64 [N])."""


# ---------------------------------------------------------------------------------------------
# Contrastive denoising queries (upstream ``prepare_for_cdn`` with DYNAMIC_LABEL_ENC)


class NoiseDraws(NamedTuple):
    """The random numbers of the box noise, one row per noised box: ``sign`` [n, 4] in {0, 1}
    (upstream ``randint_like(0, 2)``), ``part`` [n, 4] uniform in [0, 1) (``rand_like``)."""

    sign: Tensor
    part: Tensor


def draw_noise(count: int, device: torch.device) -> NoiseDraws:
    """Upstream's draws from torch's global generator, in its order (signs, then parts)."""
    sign = torch.randint(0, 2, (count, 4), device=device).to(torch.float32)
    return NoiseDraws(sign, torch.rand((count, 4), device=device))


def denoising_groups(counts: Sequence[int], dn_number: int) -> int:
    """Number of denoising groups of a batch whose images hold ``counts`` objects:
    (2·dn_number) // (2·largest count), at least 1; 0 when no image has an object."""
    largest = max(counts, default=0)
    return max(1, (2 * dn_number) // (2 * largest)) if largest else 0


def noised_boxes(boxes: Tensor, negative: Tensor, draws: NoiseDraws, scale: float) -> Tensor:
    """DINO's box noise: each corner moves by ±part·(w/2, h/2)·scale, part in [0, 1) for a
    positive and [1, 2) for a negative query; the corners are clamped to [0, 1].

    Args:
        boxes: [n, 4] cxcywh in [0, 1].
        negative: [n] bool.
        draws: ``NoiseDraws`` of n rows.
        scale: BOX_NOISE_SCALE.

    Returns:
        [n, 4] cxcywh (widths may be 0 after the clamp).
    """
    half = boxes[:, 2:] / 2
    corners = torch.cat((boxes[:, :2] - half, boxes[:, :2] + half), 1)
    part = (draws.part + negative[:, None].to(draws.part.dtype)) * (draws.sign * 2.0 - 1.0)
    moved = (corners + part * torch.cat((half, half), 1) * scale).clamp(min=0.0, max=1.0)
    return torch.cat(((moved[:, :2] + moved[:, 2:]) / 2, moved[:, 2:] - moved[:, :2]), 1)


def denoising_attention_mask(
    groups: int, group_size: int, queries: int, device: torch.device
) -> Tensor:
    """bool [P + Q, P + Q] (P = groups·group_size, True = blocked): the proposals see no
    denoising slot, a denoising slot sees its own group and the proposals."""
    size = groups * group_size
    mask = torch.zeros((size + queries, size + queries), dtype=torch.bool, device=device)
    mask[size:, :size] = True
    group = torch.arange(size, device=device) // group_size
    mask[:size, :size] = group[:, None] != group[None, :]
    return mask


def denoising_queries(
    boxes: Sequence[Tensor],
    label_enc: Tensor,
    *,
    dn_number: int,
    queries: int,
    box_noise_scale: float,
    draws: NoiseDraws | None = None,
) -> DenoisingQueries | None:
    """The denoising queries of a batch (None when no image has an object).

    Groups of 2·G slots (G = the largest object count): G positive slots, then G negative ones;
    object t of image b sits in slot t of each half of each group (padding slots stay zero).

    Args:
        boxes: per image [G_b, 4] its objects' cxcywh boxes.
        label_enc: [B, C] each image's label embedding (``detr.resizer`` of its pooled text).
        dn_number: DN_NUMBER.
        queries: Q, the proposals after the denoising slots.
        box_noise_scale: BOX_NOISE_SCALE.
        draws: the noise of the 2·groups·Σ G_b noised boxes (default: ``draw_noise``).

    Returns:
        content [B, P, C], boxes [B, P, 4] (inverse sigmoid of the noised boxes) and the
        self-attention mask [P + Q, P + Q].
    """
    counts = [int(b.shape[0]) for b in boxes]
    groups = denoising_groups(counts, dn_number)
    if groups == 0:
        return None
    largest, known = max(counts), torch.cat(list(boxes))
    copies, device = 2 * groups, label_enc.device
    negative = (torch.arange(copies, device=device) % 2 == 1).repeat_interleave(len(known))
    draws = draws if draws is not None else draw_noise(copies * len(known), device)
    noisy = noised_boxes(known.repeat(copies, 1), negative, draws, box_noise_scale)
    image = torch.cat([torch.full((n,), b, device=device) for b, n in enumerate(counts)])
    local = torch.cat([torch.arange(n, device=device) for n in counts])
    image, local = image.repeat(copies), local.repeat(copies)
    slot = local + largest * torch.arange(copies, device=device).repeat_interleave(len(known))
    content = label_enc.new_zeros((len(boxes), copies * largest, label_enc.shape[-1]))
    content[image, slot] = label_enc[image]
    box_logits = noisy.new_zeros((len(boxes), copies * largest, 4))
    box_logits[image, slot] = inverse_sigmoid(noisy)
    mask = denoising_attention_mask(groups, 2 * largest, queries, device)
    return DenoisingQueries(content, box_logits, mask)


def key_boxes(clip: Clip) -> Tensor:
    """The key frame's object as the mapper's target: [1, 4] normalised cxcywh of the tight mask
    box with exclusive ends (detectron2 ``BitMasks.get_bounding_boxes``), [0, 4] when the object
    is not visible."""
    mask = clip.masks[0].to(torch.bool)
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return torch.zeros((0, 4), device=mask.device)
    height, width = mask.shape
    corners = torch.stack((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)).to(torch.float32)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=mask.device)
    n = corners / scale
    return torch.stack(((n[0] + n[2]) / 2, (n[1] + n[3]) / 2, n[2] - n[0], n[3] - n[1]))[None]


# ---------------------------------------------------------------------------------------------
# The training forward


def forward(model: nn.Module, tokenizer: Tokenizer, clips: Sequence[Clip]) -> dict[str, Any]:
    """B (key, reference) clips -> the criterion's outputs (``UNINEXTCriterion``).

    Returns, with L decoder layers, P denoising slots (first) and Q proposals:
    ``pred_logits`` [L] × [B, P + Q, 1], ``pred_boxes`` [L] × [B, P + Q, 4],
    ``pred_ious`` [L] × [B, P + Q, 1], ``mask_logits`` (layer, matched PairIndices) -> [N, Hp/4,
    Wp/4] (and its inputs ``mask_features``, ``mask_params``), ``enc_logits`` [B, E, 1], ``enc_boxes`` [B, E, 4], ``key_embeds`` / ``ref_embeds``
    [B, Q, C], ``ref_boxes`` [B, Q, 4], ``ref_scores`` [B, Q, 1] (no gradient).
    """
    assert isinstance(model, Uninext)
    if any(int(clip.frames.shape[0]) != CLIP_FRAMES for clip in clips):
        raise ValueError("UNINEXT trains on (key, reference) clips of 2 frames")
    device = next(model.parameters()).device
    key, ref = split_pairs(pad_batch([f.to(device) for clip in clips for f in clip.frames]))
    tokens = query_tokens(model, tokenizer, clips).to(device)
    text = model.encode_text(tokens.input_ids, tokens.attention_mask)
    label_enc = model.detr.resizer(average_text(text, tokens.attention_mask))
    config = model.config
    denoising = denoising_queries(
        [key_boxes(clip).to(device) for clip in clips],
        label_enc,
        dn_number=config.dn_number,
        queries=config.num_proposals,
        box_noise_scale=config.box_noise_scale,
    )
    key_visual = model.encode_frames(key)
    with torch.no_grad():
        ref_visual = model.encode_frames(ref)
    with torch.autocast(device_type=device.type, enabled=False):
        text, mask = text.float(), tokens.attention_mask
        key_out = _transformer(model, key_visual, text, mask, denoising)
        with torch.no_grad():
            ref_out = _transformer(model, ref_visual, text, mask, None)
        slots = 0 if denoising is None else denoising.content.shape[1]
        return {
            **layer_outputs(model, key_out, mask),
            **mask_outputs(model, key_out, slots, key.image_sizes),
            "enc_logits": key_out.enc_outputs_class,
            "enc_boxes": key_out.enc_outputs_coord_unact.sigmoid(),
            **reid_outputs(model, key_out, ref_out, mask, slots),
        }


def _transformer(
    model: Uninext,
    visual: VisualFeatures,
    text: Tensor,
    mask: Tensor,
    denoising: DenoisingQueries | None,
) -> TransformerOutput:
    """The fusion transformer in fp32 over encoded frames (``model.encode_frames``)."""
    srcs, poses = [s.float() for s in visual.srcs], [p.float() for p in visual.poses]
    return model.detr.detr.transformer(srcs, visual.masks, poses, text, mask, denoising)


def split_pairs(batch: FrameBatch) -> tuple[FrameBatch, FrameBatch]:
    """Frames (key, reference, key, reference, ...) padded together -> (key frames, reference
    frames), each keeping the common padded size."""
    return tuple(
        FrameBatch(batch.tensors[start::2], batch.mask[start::2], batch.image_sizes[start::2])
        for start in (0, 1)
    )  # type: ignore[return-value]


def query_tokens(model: Uninext, tokenizer: Tokenizer, clips: Sequence[Clip]) -> Tokens:
    """Upstream's cleaned expressions through the BERT tokenizer, padded to the model's
    ``max_query_len`` (the inference call)."""
    spec = dataclasses.replace(tokenizer.spec, max_length=model.config.max_query_len)
    call = Tokenizer(tokenizer.backend, spec, tokenizer.max_tokens)
    return call([clean_expression(clip.caption) for clip in clips])


def layer_outputs(model: Uninext, out: TransformerOutput, text_mask: Tensor) -> dict[str, Any]:
    """Every decoder layer's class logits (against the pooled fused text), boxes (refined from the
    layer's input boxes, look-forward-twice) and IoU logits, denoising slots included."""
    det = model.detr.detr
    pooled = average_text(out.text, text_mask).unsqueeze(1)
    logits, boxes, ious = [], [], []
    for layer, reference in enumerate(layer_references(out)):
        states = out.hs[layer]
        logits.append(det.class_embed[layer](states, pooled))
        boxes.append((det.bbox_embed[layer](states) + inverse_sigmoid(reference)).sigmoid())
        ious.append(det.iou_head[layer](states))
    return {"pred_logits": logits, "pred_boxes": boxes, "pred_ious": ious}


def layer_references(out: TransformerOutput) -> list[Tensor]:
    """Each decoder layer's input boxes [N, P + Q, 4]: the initial ones, then each layer's
    refined ones (with their gradient, as upstream's heads read them)."""
    return [out.init_reference, *out.inter_references[:-1]]


def mask_outputs(
    model: Uninext, out: TransformerOutput, slots: int, image_sizes: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """The mask branch's inputs, computed in the forward for every proposal of every layer (as
    upstream's ``controller(hs[lvl])``), so that DDP sees the mask head and the controller used:
    ``mask_features`` [B, C/32, Hp/8, Wp/8], ``mask_params`` [L] x [B, Q, P], and the criterion's
    ``mask_logits``: (decoder layer, matched queries) -> their dynamic-mask logits [N, Hp/4,
    Wp/4], image by image in the order of the indices (upstream ``forward_mask_head_train``: the
    layer's input box centres in pixels of the unpadded frame)."""
    features = model.mask_features(out)
    params = [model.detr.controller(states[:, slots:]) for states in out.hs]
    sizes = torch.tensor([[w, h] for h, w in image_sizes], dtype=torch.float32)
    scale = sizes.to(features.device)[:, None, :]
    points = [
        inverse_sigmoid(reference[:, slots:]).sigmoid()[..., :2] * scale
        for reference in layer_references(out)
    ]

    def logits(layer: int, indices: PairIndices) -> Tensor:
        per_image = [
            model.detr.dynamic(
                features[b : b + 1],
                params[layer][b, queries][None],
                points[layer][b, queries][None],
            )[0]
            for b, (queries, _) in enumerate(indices)
            if len(queries)
        ]
        if not per_image:
            return features.new_zeros((0, 2 * features.shape[-2], 2 * features.shape[-1]))
        return torch.cat(per_image)

    return {"mask_features": features, "mask_params": params, "mask_logits": logits}


def reid_outputs(
    model: Uninext, key: TransformerOutput, ref: TransformerOutput, text_mask: Tensor, slots: int
) -> dict[str, Tensor]:
    """The reid head on the last layer's detached states, boxes and memory of the key frames
    (proposals only) and of the reference frames, and the reference frames' last-layer boxes and
    probabilities (upstream ``select_pos_neg`` with DETACH_REID and the deformable head)."""
    last = model.config.dec_layers - 1
    key_embeds = model.reid_embeddings(
        key.hs[-1][:, slots:].detach(),
        key.inter_references[-1][:, slots:].detach(),
        key.memory.detach(),
        key.levels,
    )
    ref_embeds = model.reid_embeddings(ref.hs[-1], ref.inter_references[-1], ref.memory, ref.levels)
    with torch.no_grad():
        pooled = average_text(ref.text, text_mask).unsqueeze(1)
        scores = model.detr.detr.class_embed[last](ref.hs[-1], pooled).sigmoid()
    return {
        "key_embeds": key_embeds,
        "ref_embeds": ref_embeds,
        "ref_boxes": ref.inter_references[-1],
        "ref_scores": scores,
    }


# ---------------------------------------------------------------------------------------------
# Parameter groups and initialisation


def param_group(name: str) -> ParamGroup:
    """``train_net.py::build_optimizer``'s rate of a parameter, first match wins: "backbone" in
    the name -> backbone (BACKBONE_MULTIPLIER), ``sampling_offsets`` / ``reference_points`` ->
    linear_proj (LINEAR_PROJ_MULTIPLIER), "text_encoder" -> text encoder (LANG_LR; frozen by
    FREEZE_TEXT_ENCODER), everything else -> rest (the VL fusion's VL_LR equals BASE_LR in every
    video-joint configuration)."""
    if "backbone" in name:
        return "backbone"
    if "sampling_offsets" in name or "reference_points" in name:
        return "linear_proj"
    if "text_encoder" in name:
        return "text_encoder"
    return "rest"


def init_like_upstream(model: nn.Module) -> list[str]:
    """Upstream's constructor initialisation of the parts no pretrained file covers: the
    transformer's matrices Xavier-uniform, then its deformable attention's and VL fusion's own
    resets and N(0, 1) level embeddings; Xavier input projections; zero last box layers; the
    prior on the class and proposal biases; a Xavier, zero-bias controller. Returns what it
    filled."""
    assert isinstance(model, Uninext)
    det = model.detr.detr
    _init_transformer(det.transformer)
    bias = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
    with torch.no_grad():
        for proj in det.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        for box in det.bbox_embed:
            nn.init.zeros_(box.layers[-1].weight)
            nn.init.zeros_(box.layers[-1].bias)
        for head in det.class_embed[:-1]:
            head.bias0.fill_(bias)
        det.class_embed[-1].body.bias.fill_(bias)
        for layer in model.detr.controller.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return [
        "detr.detr.transformer",
        "detr.detr.input_proj",
        "detr.detr.bbox_embed",
        "detr.detr.class_embed",
        "detr.controller",
    ]


def _init_transformer(transformer: nn.Module) -> None:
    """``DeformableTransformerVLDINO._reset_parameters`` (run before the heads are attached)."""
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if p.dim() > 1 and not name.startswith(("decoder.bbox_embed", "decoder.class_embed")):
                nn.init.xavier_uniform_(p)
        for module in transformer.modules():
            if isinstance(module, MSDeformAttn):
                module.reset_parameters()
            if isinstance(module, BiMultiHeadAttention):
                _reset_fusion(module)
        nn.init.normal_(transformer.level_embed)


def _reset_fusion(attention: BiMultiHeadAttention) -> None:
    """GLIP's ``BiMultiHeadAttention._reset_parameters``: Xavier projections, zero biases."""
    for name in ("v_proj", "l_proj", "values_v_proj", "values_l_proj", "out_v_proj", "out_l_proj"):
        layer = getattr(attention, name)
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)


HOOKS = TrainingHooks(
    criterion="uninext",
    forward=forward,
    param_group=param_group,
    decoder_layers=lambda model: model.config.dec_layers,
    checkpoint_container="model",
    upstream_init=init_like_upstream,
    tokenizer=UNINEXT_BERT_TOKENIZER,
    pretrained_init=init_from_pretrained,
)
"""UNINEXT's hooks; its checkpoints are detectron2's ``{'model': ...}`` (the released files' layout).
Upstream decays every parameter (``build_optimizer`` ignores WEIGHT_DECAY_NORM): no exemptions."""
