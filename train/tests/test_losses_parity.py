"""The training losses against upstream's, on every ``case_*.pt`` of the fixture folders
``train_referformer`` and ``train_soc`` (READMEs there: layout, tolerances, test outline).

Settings come from each folder's ``config.json`` (``args``), the weights are checked against the
case's own ``weight_dict``; nothing here depends on the particular fixture values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from rvos_core.testing import parity_dir
from rvos_train.losses import Criterion, ReferFormerLossSettings, SOCLossSettings, criterion

FOLDERS = {"referformer": "train_referformer", "soc": "train_soc"}
SETTINGS = {"referformer": ReferFormerLossSettings, "soc": SOCLossSettings}
SHARED = {"referformer": (), "soc": ("text_sentence_feature",)}
"""Output tensors that are one tensor shared by every decoder layer."""
SOC_COST_TERMS = {
    "label": ("class", 1.0),
    "dice": ("dice", -1.0),
    "box": ("box", 1.0),
    "giou": ("giou", 1.0),
}
"""Fixture cost term -> (our term, sign): the fixture stores the dice coefficient, we store −dice."""


def _cases(family: str) -> Iterator[tuple[str, Criterion, dict[str, Any]]]:
    """(case name, criterion built from the folder's config.json, case dict) for every case."""
    folder = parity_dir(FOLDERS[family])
    config = json.loads((folder / "config.json").read_text())
    paths = sorted(folder.glob("case_*.pt"))
    assert paths, f"no case_*.pt in {folder}"
    for path in paths:
        settings = SETTINGS[family].from_upstream(config["args"])
        yield Path(path).stem, criterion(family, settings), torch.load(path, weights_only=True)


def _leaves(outputs: Mapping[str, Any], shared: tuple[str, ...]) -> dict[str, Any]:
    """Fresh leaf copies of the outputs (``aux_outputs`` included) that require gradients; a
    shared tensor is one leaf for every layer."""
    common = {key: outputs[key].clone().requires_grad_() for key in shared}

    def layer(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {
            key: common[key] if key in common else value.clone().requires_grad_()
            for key, value in tensors.items()
            if key != "aux_outputs"
        }

    pred: dict[str, Any] = layer(outputs)
    pred["aux_outputs"] = [layer(aux) for aux in outputs["aux_outputs"]]
    return pred


def _pairs(indices: list[Any]) -> list[list[int]]:
    return [[int(src), int(tgt)] for src, tgt in indices]


def _close_loss(actual: Tensor, expected: Tensor, what: str) -> None:
    """The README's loss tolerance: rtol 1e-5, atol 1e-8."""
    torch.testing.assert_close(
        actual.detach(), expected, rtol=1e-5, atol=1e-8, msg=lambda m: f"{what}: {m}"
    )


def _close_to_max(actual: Tensor, expected: Tensor, rtol: float, scale: float, what: str) -> None:
    """assert_close with atol = scale · max|expected|."""
    atol = scale * expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _layers(outputs: Mapping[str, Any]) -> list[tuple[str, dict[str, Tensor]]]:
    """[("final", last layer), ("aux[i]", layer i) ...] of the fixture's outputs."""
    last = {key: value for key, value in outputs.items() if key != "aux_outputs"}
    return [("final", last)] + [(f"aux[{i}]", aux) for i, aux in enumerate(outputs["aux_outputs"])]


def _layer_entry(stored: Mapping[str, Any], name: str) -> Any:
    """The fixture's per-layer entry (``final`` or ``aux[i]``) of ``cost`` / ``cost_terms``."""
    return stored["final"] if name == "final" else stored["aux"][int(name[4:-1])]


@pytest.mark.parity
@pytest.mark.parametrize("family", FOLDERS)
def test_weight_dict_is_the_fixtures(family: str) -> None:
    for case, loss, data in _cases(family):
        assert loss.weight_dict == pytest.approx(data["weight_dict"]), case
        assert list(loss.weight_dict) == list(data["weight_dict"]), case


@pytest.mark.parity
@pytest.mark.parametrize("family", FOLDERS)
def test_indices_losses_and_total_match_upstream(family: str) -> None:
    for case, loss, data in _cases(family):
        losses, indices = loss(_leaves(data["outputs"], SHARED[family]), data["targets"])
        assert _pairs(indices["final"]) == _pairs(data["indices"]["final"]), case
        assert [_pairs(i) for i in indices["aux"]] == [_pairs(i) for i in data["indices"]["aux"]], (
            case
        )
        assert list(losses) == list(data["losses"]), case
        for name, expected in data["losses"].items():
            _close_loss(losses[name], expected, f"{case} {name}")
            weighted = loss.weight_dict[name] * losses[name]
            _close_loss(weighted, data["losses_weighted"][name], f"{case} weighted {name}")
        _close_loss(loss.total(losses), data["total"], f"{case} total")


@pytest.mark.parity
@pytest.mark.parametrize("family", FOLDERS)
def test_gradients_match_upstream_on_every_layer(family: str) -> None:
    for case, loss, data in _cases(family):
        pred = _leaves(data["outputs"], SHARED[family])
        loss.total(loss(pred, data["targets"])[0]).backward()
        grads = data["grads"]
        layers = [("final", pred, grads)] + [
            (f"aux[{i}]", aux, grads["aux_outputs"][i]) for i, aux in enumerate(pred["aux_outputs"])
        ]
        for layer, tensors, expected in layers:
            for key, grad in expected.items():
                if key != "aux_outputs":
                    _close_to_max(tensors[key].grad, grad, 1e-4, 1e-5, f"{case} {layer} {key}")


@pytest.mark.parity
@pytest.mark.parametrize("family", FOLDERS)
def test_matching_costs_match_upstream(family: str) -> None:
    for case, loss, data in _cases(family):
        for layer, outputs in _layers(data["outputs"]):
            matching = loss.match(outputs, data["targets"])
            for clip, expected in enumerate(_layer_entry(data["cost"], layer)):
                _close_to_max(
                    matching.cost[clip], expected[:, 0], 1e-5, 1e-5, f"{case} {layer} cost[{clip}]"
                )


@pytest.mark.parity
def test_soc_cost_terms_match_upstream_on_each_clips_block() -> None:
    """The fixture's terms are [B·Q, B] over every (query of any clip, clip); the matching reads
    the block of a clip's own queries and column, which is what we compute."""
    for case, loss, data in _cases("soc"):
        for layer, outputs in _layers(data["outputs"]):
            matching = loss.match(outputs, data["targets"])
            clips, queries = matching.cost.shape
            for name, stored in _layer_entry(data["cost_terms"], layer).items():
                ours, sign = SOC_COST_TERMS[name]
                expected = torch.stack(
                    [stored[b * queries : (b + 1) * queries, b] for b in range(clips)]
                )
                _close_to_max(
                    matching.terms[ours], sign * expected, 1e-5, 1e-5, f"{case} {layer} {name}"
                )
