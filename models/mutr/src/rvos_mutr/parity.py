"""Parity handler of the ``mutr`` fixture (``python -m rvos_core.parity``; unit tests).

Builds the model from the fixture's config.json (upstream argument names and constructor
overrides), strict-loads its state dict, and compares with upstream (tolerances of the fixture
README, rvos_core.parity_checks): preprocessing of the uint8 frames, the tokenizer call (when the
sibling ``text_tokenizer`` fixture is present), the forward outputs, the captured intermediates
(shared ones, the four MTA states, the ``mti`` video queries, the controller), the competition
post-processing (per-frame scores exactly constant, key frame 0), and the predictor end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rvos_core.checkpoint import load_state_dict_strict
from rvos_core.hooks import ForwardRecorder
from rvos_core.parity import ParityCheck
from rvos_core.parity_checks import (
    INTERMEDIATE,
    MASKS,
    SCORES,
    check_calls,
    check_postprocess,
    check_shared_intermediates,
    check_tokens,
    fixture_frames,
    fixture_tokenizer,
)
from rvos_core.preprocess import preprocess_frames
from rvos_mutr.config import MUTRConfig
from rvos_mutr.model import MUTR, MUTROutput, build
from rvos_mutr.predictor import MUTRPredictor

RECORDED = (
    "backbone",
    "text_encoder",
    "resizer",
    "fusion_module",
    "MTA",
    "transformer",
    "mti",
    "pixel_decoder",
    "controller",
)


def fixture_config(fixture: Path) -> MUTRConfig:
    """The model configuration of a mutr fixture (config.json, upstream names)."""
    config = json.loads((fixture / "config.json").read_text())
    build_section = config["build"]
    return MUTRConfig.from_upstream(
        build_section["model_args"],
        video_swin=build_section["video_swin"],
        text=build_section["roberta_config"],
        overrides=build_section.get("constructor_overrides"),
    ).replace(resize_short=config["input"]["preprocess"]["resize_short"])


def fixture_model(fixture: Path) -> MUTR:
    """The fixture's model with its weights, in eval mode."""
    model = build(fixture_config(fixture))
    state = torch.load(fixture / "state_dict.pt", weights_only=True)
    load_state_dict_strict(model, state, source=str(fixture / "state_dict.pt"))
    return model.eval()


def _check_outputs(check: ParityCheck, out: MUTROutput, expected: dict[str, Any]) -> None:
    check.close("pred_logits", out.pred_logits, expected["pred_logits"], **INTERMEDIATE)
    check.close("pred_boxes", out.pred_boxes, expected["pred_boxes"], **INTERMEDIATE)
    check.close("pred_masks", out.pred_masks, expected["pred_masks"], **MASKS)
    check.close(
        "reference_points", out.reference_points, expected["reference_points"], **INTERMEDIATE
    )
    # upstream's eval forward returns no auxiliary layers; ours has none
    check.equal("aux_outputs (count)", 0, len(expected["aux_outputs"]))


def _check_mutr_intermediates(
    check: ParityCheck, calls: dict[str, list[Any]], expected: dict[str, Any]
) -> None:
    """MTA states [L, 1, d] per level; mti: ours [B, Q, d] vs upstream [layers, B, Q, d];
    controller: ours once on the video queries [Q, P] vs upstream's per frame [T, Q, P]."""
    check_calls(check, "MTA", calls["MTA"], expected["MTA"], **INTERMEDIATE)
    (video_queries,) = calls["mti"]
    check.close("mti", video_queries[None], expected["mti"], **INTERMEDIATE)
    (params,) = calls["controller"]
    theirs = expected["controller"]
    check.close("controller", params.expand(theirs.shape), theirs, **INTERMEDIATE)


def _check_predictor(
    check: ParityCheck,
    model: MUTR,
    fixture: Path,
    inputs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    tokenizer = fixture_tokenizer(fixture, model.config.text.max_tokens)
    if tokenizer is None:
        return
    check_tokens(check, tokenizer, inputs)
    predictor = MUTRPredictor(model, tokenizer, torch.device("cpu"))
    (prediction,) = predictor.predict(fixture_frames(inputs), [inputs["caption"]])
    check.close("predictor.probs", prediction.probs, expected["mask_logits"].sigmoid(), **MASKS)
    check.close("predictor.scores", prediction.scores, expected["class_info_tensor"], **SCORES)


def mutr_parity(fixture: Path, check: ParityCheck) -> None:
    """Run the fixture (see the module docstring) and record every comparison in ``check``."""
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model = fixture_model(fixture)
    frames = preprocess_frames(fixture_frames(inputs), model.config.resize_short)
    check.close("preprocess.frames", frames, inputs["frames"], rtol=0.0, atol=1e-6)
    with ForwardRecorder(model, RECORDED) as recorder, torch.no_grad():
        out = model(inputs["frames"], inputs["input_ids"], inputs["attention_mask"], inputs["size"])
    _check_outputs(check, out, torch.load(fixture / "outputs.pt", weights_only=True))
    intermediates = torch.load(fixture / "intermediates.pt", weights_only=True)
    check_shared_intermediates(check, recorder.calls, intermediates)
    _check_mutr_intermediates(check, recorder.calls, intermediates)
    expected = torch.load(fixture / "postprocess.pt", weights_only=True)
    result = check_postprocess(check, out.pred_logits[0], out.pred_masks[0], expected)
    # README: the per-frame scores come from one video query, so they are exactly constant
    first = result.class_info[:1].expand_as(result.class_info)
    check.equal("class_info constant over time", result.class_info, first)
    with torch.no_grad():
        _check_predictor(check, model, fixture, inputs, expected)
