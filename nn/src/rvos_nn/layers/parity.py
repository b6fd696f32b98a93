"""Parity handlers of the shared-layer fixtures ``ms_deform_attn`` and ``video_swin``.

Registered under the entry-point group ``rvos.parity`` (core's pyproject.toml), run by
``python -m rvos_nn.parity FIXTURE_DIR`` and by the unit tests. Tolerances are the READMEs'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rvos_nn.checkpoint import load_state_dict_strict
from rvos_nn.layers.backbone import Joiner, MaskedBackbone
from rvos_nn.layers.ms_deform_attn import MSDeformAttn, ms_deform_attn_core
from rvos_nn.layers.position import PositionEmbeddingSine2D
from rvos_nn.layers.video_swin import VideoSwinBackbone, VideoSwinConfig, build_video_swin
from rvos_nn.parity import ParityCheck

# Arguments of upstream's VideoSwinTransformerBackbone wrapper that are not Video-Swin settings.
WRAPPER_ONLY = frozenset({"backbone_pretrained", "backbone_pretrained_path", "train_backbone"})


def _load(fixture: Path, name: str) -> Any:
    return torch.load(fixture / name, weights_only=True)


def _shapes(tensor: torch.Tensor) -> list[tuple[int, int]]:
    return [(int(h), int(w)) for h, w in tensor.tolist()]


def ms_deform_attn_parity(fixture: Path, check: ParityCheck) -> None:
    """Core function cases and module cases of upstream's deformable attention."""
    for case in _load(fixture, "core_cases.pt"):
        i = case["inputs"]
        out = ms_deform_attn_core(
            i["value"],
            _shapes(i["value_spatial_shapes"]),
            i["sampling_locations"],
            i["attention_weights"],
        )
        check.close(f"core.{case['name']}", out, case["output"], rtol=1e-5, atol=1e-6)
    config = json.loads((fixture / "config.json").read_text())["module_constructor"]
    module = MSDeformAttn(**config)
    load_state_dict_strict(module, _load(fixture, "module_state_dict.pt"), source=str(fixture))
    outputs = _load(fixture, "module_outputs.pt")
    for name, i in _load(fixture, "module_inputs.pt").items():
        with torch.no_grad():
            out, locations, weights = module(
                i["query"],
                i["reference_points"],
                i["input_flatten"],
                _shapes(i["input_spatial_shapes"]),
                i["input_padding_mask"],
            )
        expected = outputs[name]
        check.close(f"module.{name}.output", out, expected["output"], rtol=1e-5, atol=1e-5)
        check.close(
            f"module.{name}.sampling_locations",
            locations,
            expected["sampling_locations"],
            rtol=0,
            atol=1e-6,
        )
        check.close(
            f"module.{name}.attention_weights",
            weights,
            expected["attention_weights"],
            rtol=0,
            atol=1e-6,
        )


def fixture_video_swin(fixture: Path) -> VideoSwinBackbone:
    """The fixture's backbone (config.json constructor values) with its weights, in eval mode."""
    values = json.loads((fixture / "config.json").read_text())["constructor"]
    backbone = build_video_swin(
        VideoSwinConfig.from_upstream({k: v for k, v in values.items() if k not in WRAPPER_ONLY})
    )
    load_state_dict_strict(
        backbone, _load(fixture, "state_dict.pt"), source=str(fixture / "state_dict.pt")
    )
    return backbone.eval()


def video_swin_parity(fixture: Path, check: ParityCheck) -> None:
    """Stage outputs of every wrapper case, and the backbone + position joiner (when present)."""
    backbone = fixture_video_swin(fixture)
    outputs = _load(fixture, "outputs.pt")
    for name, case in _load(fixture, "inputs.pt").items():
        with torch.no_grad():
            stages = backbone(case["samples"], case["num_frames"])
        check.equal(f"{name}.stages", len(stages), len(outputs[name]))
        for i, stage in enumerate(stages):
            check.close(f"{name}.stage{i}", stage, outputs[name][str(i)], rtol=1e-5, atol=1e-5)
    if (fixture / "joiner.pt").is_file():
        _joiner_parity(fixture, backbone, check)


def _joiner_parity(fixture: Path, backbone: VideoSwinBackbone, check: ParityCheck) -> None:
    feats = json.loads((fixture / "config.json").read_text())["joiner_case"]["pos_num_feats"]
    joiner = Joiner(
        MaskedBackbone(backbone), PositionEmbeddingSine2D(num_pos_feats=feats, normalize=True)
    )
    case = _load(fixture, "joiner.pt")
    with torch.no_grad():
        out = joiner(case["inputs"]["tensors"], case["inputs"]["mask"])
    expected = case["outputs"]
    for i, theirs in enumerate(expected["features"]):
        check.close(f"joiner.features[{i}]", out.features[i], theirs, rtol=1e-5, atol=1e-5)
        check.equal(f"joiner.masks[{i}]", out.masks[i], expected["masks"][i])
        # positions of fully padded columns depend on fp32 rounding (README): valid ones only
        valid = ~expected["masks"][i][:, None].expand_as(expected["pos"][i])
        check.close(
            f"joiner.pos[{i}] (valid)",
            out.pos[i][valid],
            expected["pos"][i][valid],
            rtol=0,
            atol=1e-5,
        )
