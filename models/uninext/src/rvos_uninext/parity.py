"""Parity handlers of the UNINEXT fixtures (``python -m rvos_nn.parity``; the unit tests).

Fixture kinds (folder names under ``$RVOS_PARITY_DIR``): ``uninext/vit``, ``uninext/convnext``
(backbones), ``uninext/preprocess`` (resize / normalise / pad), ``uninext/model/<backbone>`` (the
whole RVOS path). Every handler builds from the fixture's config.json, strict-loads its state dict
with the model's checkpoint rules and compares with the recorded upstream outputs.

Tolerances are the READMEs' (atol = rtol = 1e-5; exact for preprocessing, query indices, key
frames and the binary masks away from 0.5), with the model README's allowance across CPUs: the
mask logits are sums of large terms that cancel, so they are held to 1e-5 of their largest
magnitude (``MASK_LOGITS_SCALE``), the probabilities to ``PROBS_ATOL`` and the binary masks only
where the probability is ``BINARY_MARGIN`` away from 0.5. The predictor with several frames per
pass (``frame_batch`` > 1, an option; upstream runs one frame at a time) batches the matrix
products, which rounds differently; it is held to the same tolerances.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rvos_core.runfolder import key_frame_index
from rvos_nn.checkpoint import load_state_dict_strict
from rvos_nn.parity import ParityCheck
from rvos_nn.text import Tokens
from rvos_uninext.config import UninextConfig
from rvos_uninext.convnext import ConvNeXt, ConvNeXtConfig
from rvos_uninext.entry import CHECKPOINT_RULES
from rvos_uninext.model import FrameOutputs, Uninext, VisualFeatures, build
from rvos_uninext.postprocess import mask_probabilities, query_scores, top_query
from rvos_uninext.predictor import UninextPredictor
from rvos_uninext.preprocess import FrameBatch, normalize, pad_batch, prepare_frames, resize_frame
from rvos_uninext.vit import ViT, ViTConfig, absolute_position_embedding

TOL = {"atol": 1e-5, "rtol": 1e-5}
MASK_LOGITS_SCALE = 1e-5  # pred_masks: atol = this * max|expected|, rtol 1e-5
PROBS_ATOL = 2e-4
BINARY_MARGIN = 1e-3  # binary masks are compared where |expected prob - 0.5| >= this
SCORES_ATOL = 1e-6  # the top-1 / second-best gaps are ~1e-4: scores must be far closer


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _config(fixture: Path) -> dict[str, Any]:
    return _json(fixture / "config.json")


# ---------------------------------------------------------------------------------------------
# Backbones


def vit_parity(fixture: Path, check: ParityCheck) -> None:
    """``uninext/vit``: pyramid outputs for every input, patch embedding, position embedding and
    every block of input ``x0``."""
    model = ViT(config=ViTConfig.from_upstream(_config(fixture))).eval()
    load_state_dict_strict(
        model, _load(fixture / "state_dict.pt"), source=str(fixture / "state_dict.pt")
    )
    inputs, outputs = _load(fixture / "inputs.pt"), _load(fixture / "outputs.pt")
    with torch.no_grad():
        for name, x in inputs.items():
            got = model(x)
            for level, expected in outputs[name].items():
                check.close(f"{name}.{level}", got[level], expected, **TOL)
        steps_file = fixture / "intermediates_x0.pt"
        if steps_file.is_file():
            _vit_steps(model, inputs["x0"], _load(steps_file), check)


def _vit_steps(
    model: ViT, x: torch.Tensor, steps: dict[str, torch.Tensor], check: ParityCheck
) -> None:
    tokens = model.patch_embed(x)
    check.close("x0.patch_embed", tokens, steps["patch_embed"], **TOL)
    pos = absolute_position_embedding(model.pos_embed, (tokens.shape[1], tokens.shape[2]))
    check.close("x0.abs_pos_resized", pos, steps["abs_pos_resized"], **TOL)
    previous = steps["patch_embed"] + steps["abs_pos_resized"]
    for i, block in enumerate(model.blocks):
        check.close(f"x0.block{i}", block(previous), steps[f"block{i}"], **TOL)
        previous = steps[f"block{i}"]


def convnext_parity(fixture: Path, check: ParityCheck) -> None:
    """``uninext/convnext``: res3..res5 for every input, and the raw stage-0 output."""
    model = ConvNeXt(config=ConvNeXtConfig.from_upstream(_config(fixture))).eval()
    load_state_dict_strict(
        model, _load(fixture / "state_dict.pt"), source=str(fixture / "state_dict.pt")
    )
    inputs, outputs = _load(fixture / "inputs.pt"), _load(fixture / "outputs.pt")
    with torch.no_grad():
        for name, x in inputs.items():
            got = model(x)
            for level, expected in outputs[name].items():
                check.close(f"{name}.{level}", got[level], expected, **TOL)
        trunk_file = fixture / "outputs_res2_trunk.pt"
        for name, levels in (_load(trunk_file) if trunk_file.is_file() else {}).items():
            check.close(
                f"{name}.res2", model.forward_stages(inputs[name])[0], levels["res2"], **TOL
            )


# ---------------------------------------------------------------------------------------------
# Preprocessing


def preprocess_parity(fixture: Path, check: ParityCheck) -> None:
    """``uninext/preprocess``: uint8-exact resize, padded size, mask and normalised values."""
    spec = _json(fixture / "cases.json")
    short, longest = spec["short_edge"], spec["max_size"]
    for name, case in spec["cases"].items():
        original = Image.open(fixture / name / "original.png").convert("RGB")
        expected = np.asarray(Image.open(fixture / name / "resized_uint8.png").convert("RGB"))
        check.equal(f"{name}.resized_uint8", resize_frame(original, short, longest), expected)
        batch = prepare_frames([original], short, longest)
        check.equal(f"{name}.padded_hw", list(batch.tensors.shape[-2:]), case["padded_hw"])
        check.equal(
            f"{name}.image_sizes",
            [list(s) for s in batch.image_sizes],
            case["imagelist_image_sizes"],
        )
        check.equal(
            f"{name}.padding_mask_true_count",
            int(batch.mask.sum()),
            case["padding_mask_true_count"],
        )
        tensors_file = fixture / name / "tensors.pt"
        if tensors_file.is_file():
            tensors = _load(tensors_file)
            rows = tensors["padded_input_last120rows"].shape[-2]
            check.equal(f"{name}.padding_mask", batch.mask, tensors["padding_mask"])
            check.equal(
                f"{name}.padded_input_last_rows",
                batch.tensors[..., -rows:, :],
                tensors["padded_input_last120rows"],
            )


# ---------------------------------------------------------------------------------------------
# Whole model


def fixture_model(fixture: Path) -> Uninext:
    """The fixture's model (config.json) with its weights, strictly loaded, in eval mode."""
    model = build(UninextConfig.from_upstream(_config(fixture)))
    state = _load(fixture / "state_dict.pt")
    load_state_dict_strict(model, state, CHECKPOINT_RULES, source=str(fixture / "state_dict.pt"))
    return model.eval()


def model_parity(fixture: Path, check: ParityCheck) -> None:
    """``uninext/model/<backbone>``: preprocessing of the original frames, BERT, every frame's
    raw outputs, the frame-0 intermediates and the competition post-processing."""
    model = fixture_model(fixture)
    inputs = _load(fixture / "inputs.pt")
    outputs = _load(fixture / "outputs.pt")
    expected_post = _load(fixture / "postprocess.pt")
    with torch.no_grad():
        _check_inputs(fixture, model, inputs, check)
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        check.close("text_encoder.hidden", text, outputs["text_encoder"]["hidden"], **TOL)
        frames = inputs["frames_padded"].shape[0]
        scores, tops, probs = [], [], []
        for f in range(frames):
            batch = FrameBatch(
                inputs["frames_padded"][f : f + 1],
                inputs["padding_mask"][f : f + 1],
                (tuple(inputs["image_size_resized"]),),
            )
            out, masks = _run_frame(model, batch, text, inputs["attention_mask"], f, fixture, check)
            _check_outputs(f"frame{f}", out, masks, outputs[f"frame{f}"], check)
            score, top = top_query(query_scores(out.pred_logits, out.pred_boxious))
            chosen = masks[torch.arange(1), top]
            probs.append(
                mask_probabilities(chosen, batch.image_sizes, tuple(inputs["original_size"]))[0]
            )
            scores.append(score[0])
            tops.append(int(top[0]))
    _check_postprocess(torch.stack(probs), torch.stack(scores), tops, expected_post, check)
    _check_predictor(fixture, model, inputs, expected_post, check)


def _check_predictor(
    fixture: Path,
    model: Uninext,
    inputs: dict[str, Any],
    expected: dict[str, Any],
    check: ParityCheck,
) -> None:
    """The predictor end to end on the original frames with the fixture's token ids (one frame
    per pass as upstream, and all frames in one pass)."""
    count = inputs["frames_uint8_resized"].shape[0]
    files = [fixture / f"original_frame{f}.png" for f in range(count)]
    if not all(f.is_file() for f in files):
        return
    frames = [Image.open(f).convert("RGB") for f in files]
    tokens = Tokens(inputs["input_ids"], inputs["attention_mask"])
    for frame_batch in (1, count):
        predictor = UninextPredictor(model, None, torch.device("cpu"), frame_batch=frame_batch)
        with torch.inference_mode():
            result = predictor.predict_tokens(predictor.prepare(frames), tokens)
        name = f"predictor(frame_batch={frame_batch})"
        check.close(f"{name}.probs", result.probs, expected["probs"], atol=PROBS_ATOL, rtol=0.0)
        check.close(f"{name}.scores", result.scores, expected["scores"], atol=SCORES_ATOL, rtol=0.0)
        check.equal(
            f"{name}.key_frame_index", key_frame_index(result.scores), expected["key_frame_index"]
        )


def _check_inputs(
    fixture: Path, model: Uninext, inputs: dict[str, Any], check: ParityCheck
) -> None:
    """Resize of the original PNGs, normalisation and padding of the resized frames (exact)."""
    short, longest = model.config.min_size_test, model.config.max_size_test
    for f in range(inputs["frames_uint8_resized"].shape[0]):
        original_file = fixture / f"original_frame{f}.png"
        if original_file.is_file():
            resized = resize_frame(Image.open(original_file).convert("RGB"), short, longest)
            check.equal(
                f"frame{f}.resized_uint8",
                torch.from_numpy(resized.copy()).permute(2, 0, 1),
                inputs["frames_uint8_resized"][f],
            )
        padded = pad_batch([normalize(inputs["frames_uint8_resized"][f])])
        check.equal(f"frame{f}.padded_input", padded.tensors[0], inputs["frames_padded"][f])
        check.equal(f"frame{f}.padding_mask", padded.mask[0], inputs["padding_mask"][f])


def _run_frame(
    model: Uninext,
    batch: FrameBatch,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    index: int,
    fixture: Path,
    check: ParityCheck,
) -> tuple[FrameOutputs, torch.Tensor]:
    visual = model.encode_frames(batch)
    out = model.decode(visual, text, text_mask, with_reid=True)
    masks = model.predict_masks(out)
    stages_file = fixture / f"stages_frame{index}.pt"
    if stages_file.is_file():
        stages = _load(stages_file)
        _check_encoding(f"frame{index}", model, batch, visual, stages, check)
        _check_transformer(
            f"frame{index}", model, visual, text, text_mask, stages["transformer_out"], check
        )
        _check_mask_branch(f"frame{index}", model, out, stages, check)
    return out, masks


def _check_encoding(
    name: str,
    model: Uninext,
    batch: FrameBatch,
    visual: VisualFeatures,
    stages: dict[str, Any],
    check: ParityCheck,
) -> None:
    """Backbone maps + masks and the transformer inputs (after the input projections)."""
    backbone = model.detr.detr.backbone[0](batch.tensors, batch.mask)
    for (features, mask), level in zip(backbone, ("res3", "res4", "res5"), strict=True):
        recorded = stages["masked_backbone_out"][level]
        check.close(f"{name}.backbone.{level}", features, recorded["tensors"], **TOL)
        check.equal(f"{name}.backbone.{level}.mask", mask, recorded["mask"])
    recorded = stages["transformer_in"]
    for level, (src, mask) in enumerate(zip(visual.srcs, visual.masks, strict=True)):
        check.close(f"{name}.transformer_in.src{level}", src, recorded["srcs"][level], **TOL)
        check.equal(f"{name}.transformer_in.mask{level}", mask, recorded["masks"][level])


def _check_transformer(
    name: str,
    model: Uninext,
    visual: VisualFeatures,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    recorded: Sequence[Any],
    check: ParityCheck,
) -> None:
    """The 8-tuple upstream's transformer returns (fixture README, ``transformer_out``)."""
    got = model.detr.detr.transformer(visual.srcs, visual.masks, visual.poses, text, text_mask)
    hs, memory, init_reference, inter_references, enc_class, enc_coord, lang, info = recorded
    check.close(f"{name}.transformer.hs", got.hs, hs, **TOL)
    check.close(f"{name}.transformer.memory", got.memory, memory, **TOL)
    check.close(f"{name}.transformer.init_reference", got.init_reference, init_reference, **TOL)
    check.close(
        f"{name}.transformer.inter_references", got.inter_references, inter_references, **TOL
    )
    check.close(f"{name}.transformer.enc_outputs_class", got.enc_outputs_class, enc_class, **TOL)
    finite = torch.isfinite(enc_coord)
    check.equal(
        f"{name}.transformer.enc_outputs_coord_unact.finite",
        torch.isfinite(got.enc_outputs_coord_unact),
        finite,
    )
    check.close(
        f"{name}.transformer.enc_outputs_coord_unact",
        got.enc_outputs_coord_unact.where(finite, 0.0),
        enc_coord.where(finite, 0.0),
        **TOL,
    )
    check.close(f"{name}.transformer.fused_text", got.text, lang["hidden"], **TOL)
    check.equal(
        f"{name}.src_info.spatial_shapes",
        torch.tensor(got.levels.shapes),
        info["src_spatial_shapes"],
    )
    check.close(f"{name}.src_info.valid_ratios", got.levels.ratios, info["src_valid_ratios"], **TOL)
    check.equal(f"{name}.src_info.padding_mask", got.levels.mask, info["src_padding_mask"])
    check.close(
        f"{name}.src_info.reference_points",
        got.inter_references[-1],
        info["reference_points"],
        **TOL,
    )


def _check_mask_branch(
    name: str, model: Uninext, out: FrameOutputs, stages: dict[str, Any], check: ParityCheck
) -> None:
    """Stride-8 mask features and the controller's dynamic parameters."""
    check.close(f"{name}.mask_head_out", model.mask_features(out), stages["mask_head_out"], **TOL)
    check.close(f"{name}.controller_in", out.states, stages["controller_in"], **TOL)
    check.close(
        f"{name}.controller_out", model.detr.controller(out.states), stages["controller_out"], **TOL
    )


def _check_outputs(
    name: str,
    out: FrameOutputs,
    masks: torch.Tensor,
    expected: dict[str, torch.Tensor],
    check: ParityCheck,
) -> None:
    """The raw ``coco_inference`` dict of one frame (last decoder layer)."""
    for field in (
        "pred_logits",
        "pred_boxes",
        "pred_boxious",
        "reference_points",
        "pred_inst_embed",
    ):
        check.close(f"{name}.{field}", getattr(out, field), expected[field], **TOL)
    recorded = expected["pred_masks"][:, :, 0]  # [N, Q, 1, h, w]: one frame per call upstream
    check.close_to_magnitude(
        f"{name}.pred_masks", masks, recorded, scale=MASK_LOGITS_SCALE, rtol=TOL["rtol"]
    )


def _check_postprocess(
    probs: torch.Tensor,
    scores: torch.Tensor,
    tops: list[int],
    expected: dict[str, Any],
    check: ParityCheck,
) -> None:
    """Per-frame probabilities, scores, top-1 queries, binary masks and the key frame."""
    check.close("postprocess.probs", probs, expected["probs"], atol=PROBS_ATOL, rtol=0.0)
    check.close("postprocess.scores", scores, expected["scores"], atol=SCORES_ATOL, rtol=0.0)
    check.equal("postprocess.top1_query_index", tops, expected["top1_query_index"])
    decided = (expected["probs"] - 0.5).abs() >= BINARY_MARGIN
    check.equal(
        f"postprocess.binary_masks (|p - 0.5| >= {BINARY_MARGIN:g})",
        (probs > 0.5)[decided],
        expected["binary_masks"][decided],
    )
    check.equal(
        "postprocess.key_frame_index",
        key_frame_index(scores.double().numpy()),
        expected["key_frame_index"],
    )
