"""Parity handler of the ``referformer`` fixture (``python -m rvos_core.parity``; unit tests).

Builds the model from the fixture's config.json (upstream argument names), strict-loads its state
dict, and compares with upstream: preprocessing of the uint8 frames, the tokenizer call (when the
sibling ``text_tokenizer`` fixture is present), the forward outputs of every decoder layer, the
captured intermediates, the competition post-processing, and the predictor end to end. Tolerances
are the fixture README's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from rvos_core.checkpoint import load_state_dict_strict
from rvos_core.hooks import ForwardRecorder
from rvos_core.parity import ParityCheck
from rvos_core.postprocess import postprocess
from rvos_core.preprocess import preprocess_frames
from rvos_core.runfolder import key_frame_index
from rvos_core.text import ROBERTA_TOKENIZER, load_tokenizer_folder
from rvos_referformer.config import ReferFormerConfig
from rvos_referformer.model import ReferFormer, ReferFormerOutput, build
from rvos_referformer.predictor import ReferFormerPredictor

INTERMEDIATE = {"rtol": 1e-4, "atol": 1e-5}
MASKS = {"rtol": 1e-4, "atol": 1e-3}
SCORES = {"rtol": 0.0, "atol": 1e-5}
MASK_MARGIN = 1e-3  # masks are compared where |mask logit| >= this


def fixture_config(fixture: Path) -> ReferFormerConfig:
    """The model configuration of a referformer fixture (config.json, upstream names)."""
    config = json.loads((fixture / "config.json").read_text())
    build_section = config["build"]
    return ReferFormerConfig.from_upstream(
        build_section["model_args"],
        video_swin=build_section["video_swin"],
        text=build_section["roberta_config"],
        overrides=build_section.get("constructor_overrides"),
    ).replace(resize_short=config["input"]["preprocess"]["resize_short"])


def fixture_model(fixture: Path) -> ReferFormer:
    """The fixture's model with its weights, in eval mode."""
    model = build(fixture_config(fixture))
    state = torch.load(fixture / "state_dict.pt", weights_only=True)
    load_state_dict_strict(model, state, source=str(fixture / "state_dict.pt"))
    return model.eval()


def fixture_frames(inputs: dict[str, Any]) -> list[Image.Image]:
    """The original uint8 frames [T, H0, W0, 3] as PIL images."""
    return [Image.fromarray(frame.numpy()) for frame in inputs["frames_uint8"]]


def _check_outputs(check: ParityCheck, out: ReferFormerOutput, expected: dict[str, Any]) -> None:
    check.close("pred_logits", out.pred_logits, expected["pred_logits"], **INTERMEDIATE)
    check.close("pred_boxes", out.pred_boxes, expected["pred_boxes"], **INTERMEDIATE)
    check.close("pred_masks", out.pred_masks, expected["pred_masks"], **MASKS)
    check.close(
        "reference_points", out.reference_points, expected["reference_points"], **INTERMEDIATE
    )
    check.equal("aux_outputs (count)", len(out.aux_outputs), len(expected["aux_outputs"]))
    for i, (ours, theirs) in enumerate(zip(out.aux_outputs, expected["aux_outputs"], strict=False)):
        for key in ("pred_logits", "pred_boxes"):
            check.close(f"aux_outputs[{i}].{key}", ours[key], theirs[key], **INTERMEDIATE)
        check.close(
            f"aux_outputs[{i}].pred_masks", ours["pred_masks"], theirs["pred_masks"], **MASKS
        )


def _check_intermediates(
    check: ParityCheck, calls: dict[str, list[Any]], expected: dict[str, Any]
) -> None:
    text = calls["text_encoder"][0]
    for key in ("last_hidden_state", "pooler_output"):
        check.close(
            f"text_encoder.{key}", getattr(text, key), expected["text_encoder"][key], **INTERMEDIATE
        )
    for name in ("resizer", "fusion_module", "controller"):
        check.equal(f"{name} (calls)", len(calls[name]), len(expected[name]))
        for i, (ours, theirs) in enumerate(zip(calls[name], expected[name], strict=False)):
            check.close(f"{name}[{i}]", ours, theirs, **INTERMEDIATE)
    features = calls["backbone"][0].features
    for i, theirs in enumerate(expected["backbone"]["features"]):
        check.close(f"backbone.features[{i}]", features[i], theirs, **INTERMEDIATE)
    transformer = calls["transformer"][0]
    for key in ("hs", "init_reference", "inter_references"):
        check.close(
            f"transformer.{key}",
            getattr(transformer, key),
            expected["transformer"][key],
            **INTERMEDIATE,
        )
    for i, theirs in enumerate(expected["transformer"]["memory"]):
        check.close(f"transformer.memory[{i}]", transformer.memory[i], theirs, **INTERMEDIATE)
    check.close(
        "pixel_decoder", calls["pixel_decoder"][0], expected["pixel_decoder"], **INTERMEDIATE
    )


def _check_postprocess(
    check: ParityCheck, out: ReferFormerOutput, expected: dict[str, Any]
) -> None:
    size = tuple(int(v) for v in expected["original_size"])
    result = postprocess(out.pred_logits[0], out.pred_masks[0], size)
    check.equal("query_index", result.query_index, expected["query_index"])
    check.close("scores_per_query", result.scores_per_query, expected["scores_per_query"], **SCORES)
    check.close("class_info", result.class_info, expected["class_info_tensor"], **SCORES)
    check.equal(
        "key_frame_index", key_frame_index(result.class_info.tolist()), expected["key_frame_index"]
    )
    check.close("mask_logits", result.mask_logits, expected["mask_logits"], **MASKS)
    sure = expected["mask_logits"].abs() >= MASK_MARGIN
    check.equal("masks (|logit| >= 1e-3)", (result.probs > 0.5)[sure], expected["masks"][sure])


def _check_predictor(
    check: ParityCheck,
    model: ReferFormer,
    fixture: Path,
    inputs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    tokenizer = load_tokenizer_folder(
        fixture.parent / "text_tokenizer", ROBERTA_TOKENIZER, model.config.text.max_tokens
    )
    tokens = tokenizer([inputs["caption"]])
    check.equal("tokenizer.input_ids", tokens.input_ids, inputs["input_ids"])
    check.equal("tokenizer.attention_mask", tokens.attention_mask, inputs["attention_mask"])
    predictor = ReferFormerPredictor(model, tokenizer, torch.device("cpu"))
    (prediction,) = predictor.predict(fixture_frames(inputs), [inputs["caption"]])
    check.close("predictor.probs", prediction.probs, expected["mask_logits"].sigmoid(), **MASKS)
    check.close("predictor.scores", prediction.scores, expected["class_info_tensor"], **SCORES)


def referformer_parity(fixture: Path, check: ParityCheck) -> None:
    """Run the fixture (see the module docstring) and record every comparison in ``check``."""
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model = fixture_model(fixture)
    frames = preprocess_frames(fixture_frames(inputs), model.config.resize_short)
    check.close("preprocess.frames", frames, inputs["frames"], rtol=0.0, atol=1e-6)
    names = [
        "backbone",
        "text_encoder",
        "resizer",
        "fusion_module",
        "transformer",
        "pixel_decoder",
        "controller",
    ]
    recorder = ForwardRecorder(model, names)
    with torch.no_grad():
        out = model(
            inputs["frames"],
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["size"],
            with_aux=True,
        )
    recorder.remove()
    _check_outputs(check, out, torch.load(fixture / "outputs.pt", weights_only=True))
    _check_intermediates(
        check, recorder.calls, torch.load(fixture / "intermediates.pt", weights_only=True)
    )
    expected = torch.load(fixture / "postprocess.pt", weights_only=True)
    _check_postprocess(check, out, expected)
    if (fixture.parent / "text_tokenizer").is_dir():
        with torch.no_grad():
            _check_predictor(check, model, fixture, inputs, expected)
