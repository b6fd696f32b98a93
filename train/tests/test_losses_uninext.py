"""UNINEXT's training criterion: against upstream on every ``case_*.pt`` of the fixture folder
``train_uninext`` (README there: semantics, layout, tolerances), and its pieces on hand-made
inputs (SimOTA's dynamic k and assignment, the DN layout, reid, targets from clips).

The settings come from each case's ``config`` (sizes, costs, DN budget), the weights are checked
against its ``weight_dict``, the reid negatives are the case's recorded draws; nothing here
depends on the particular fixture values.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.training import Clip
from rvos_train.losses import UNINEXTCriterion, UNINEXTLossSettings, criterion, settings_for
from rvos_train.losses.uninext import (
    MASK_OUT_STRIDE,
    DNLayout,
    ReidItem,
    dn_layout,
    dynamic_k_assignment,
    dynamic_ks,
    iou_and_giou,
    negative_count,
    prepare_targets,
    reid_losses,
    reid_selection,
    simota_match,
)

REPRODUCED = {"ota": True, "still_cls_for_encoder": True, "task": "grounding", "focal_gamma": 2.0}
"""Fixture flags the criterion reproduces (anything else is not UNINEXT's RVOS configuration)."""


# ---------------------------------------------------------------- fixture helpers


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    folder = parity_dir("train_uninext")
    paths = sorted(folder.glob("case_*.pt"))
    assert paths, f"no case_*.pt in {folder}"
    for path in paths:
        yield Path(path).stem, torch.load(path, weights_only=True)


def _settings(config: Mapping[str, Any]) -> UNINEXTLossSettings:
    for key, value in REPRODUCED.items():
        assert config[key] == value, f"fixture config {key}={config[key]!r}, reproduced: {value!r}"
    assert config["mask_out_stride"] == MASK_OUT_STRIDE
    return UNINEXTLossSettings(
        cost_class=float(config["set_cost_class"]),
        cost_bbox=float(config["set_cost_bbox"]),
        cost_giou=float(config["set_cost_giou"]),
        focal_alpha=float(config["focal_alpha"]),
        dn_number=int(config["dn_number"]),
        dec_layers=int(config["dec_layers"]),
    )


def _recorded_sampler(draws: Sequence[Sequence[int]]) -> Any:
    """A negative sampler that hands out the recorded draws in order."""
    pending = iter(draws)

    def sample(population: int, count: int) -> list[int]:
        ids = list(next(pending))
        assert len(ids) == count and all(0 <= i < population for i in ids)
        return ids

    return sample


def _criterion(data: Mapping[str, Any]) -> UNINEXTCriterion:
    return UNINEXTCriterion(
        _settings(data["config"]), _recorded_sampler(data["reid"]["aux_negative_sample_ids"])
    )


def _leaf(tensor: Tensor) -> Tensor:
    return tensor.detach().clone().requires_grad_()


def _leaves(preds: Mapping[str, Any]) -> dict[str, Any]:
    """Fresh leaves of every fixture prediction that receives gradient."""
    leaves: dict[str, Any] = {}
    for key, value in preds.items():
        if key in ("ref_boxes", "ref_cls"):
            leaves[key] = value
        elif key == "masks":
            leaves[key] = [[_leaf(m) for m in layer] for layer in value]
        elif isinstance(value, list):
            leaves[key] = [_leaf(v) for v in value]
        else:
            leaves[key] = _leaf(value)
    return leaves


def _outputs(leaves: Mapping[str, Any], matching: Mapping[str, Any]) -> dict[str, Any]:
    """The criterion's outputs from the fixture's leaves; the masks come for the recorded
    matching only (what upstream's mask head was run on)."""

    def mask_logits(layer: int, indices: Sequence[Sequence[Tensor]]) -> Tensor:
        assert _pairs(indices) == _pairs(matching["ota_indices_per_layer"][layer])
        return torch.cat([m[0, :, 0] for m in leaves["masks"][layer]])

    return {
        "pred_logits": leaves["logits_all_layers"],
        "pred_boxes": leaves["boxes_all_layers"],
        "pred_ious": leaves["ious_all_layers"],
        "mask_logits": mask_logits,
        "enc_logits": leaves["enc_logits"],
        "enc_boxes": leaves["enc_boxes"],
        "key_embeds": leaves["key_embeds"],
        "ref_embeds": leaves["ref_embeds"],
        "ref_boxes": leaves["ref_boxes"],
        "ref_scores": leaves["ref_cls"],
    }


def _pairs(indices: Sequence[Sequence[Tensor]]) -> list[list[list[int]]]:
    return [[s.tolist() for s in pair] for pair in indices]


def _run(data: Mapping[str, Any]) -> tuple[UNINEXTCriterion, dict[str, Any], dict, dict]:
    loss = _criterion(data)
    leaves = _leaves(data["preds"])
    targets = prepare_targets(data["frames"])
    losses, indices = loss(_outputs(leaves, data["matching"]), targets)
    return loss, leaves, losses, indices


def _close_to_max(actual: Tensor, expected: Tensor, what: str) -> None:
    """The README's gradient tolerance: rtol 1e-4, atol 1e-5 · max|g|."""
    atol = 1e-5 * expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=atol, msg=lambda m: f"{what}: {m}")


# ---------------------------------------------------------------- parity


@pytest.mark.parity
def test_weight_dict_is_upstreams_plus_the_iou_branch() -> None:
    for case, data in _cases():
        weights = _criterion(data).weight_dict
        expected = data["weight_dict"]
        assert {k: weights[k] for k in expected} == pytest.approx(expected), case
        assert [k for k in weights if k in expected] == list(expected), case
        extra = {k: v for k, v in weights.items() if k not in expected}
        assert extra and all(k.startswith("loss_boxiou") and v == 1.0 for k, v in extra.items())


@pytest.mark.parity
def test_targets_match_upstream() -> None:
    for case, data in _cases():
        targets = prepare_targets(data["frames"])
        for ours, theirs, frame in (
            (targets.key, data["targets"]["det_targets"], "key"),
            (targets.ref, data["targets"]["ref_targets"], "ref"),
        ):
            for clip, (mine, stored) in enumerate(zip(ours, theirs, strict=True)):
                assert list(mine) == list(stored), f"{case} {frame}[{clip}]"
                for key, value in stored.items():
                    torch.testing.assert_close(mine[key], value, rtol=0, atol=0)


@pytest.mark.parity
def test_dn_layout_matches_upstream() -> None:
    for case, data in _cases():
        layout = _criterion(data).dn_layout(prepare_targets(data["frames"]))
        dn = data["dn"]
        assert (layout.groups, layout.group_size, layout.size) == (
            dn["dn_num"],
            dn["single_padding"],
            dn["pad_size"],
        ), case
        assert data["preds"]["logits_all_layers"][0].shape[1] == layout.size + data["config"]["nq"]


@pytest.mark.parity
def test_simota_and_hungarian_indices_match_upstream() -> None:
    for case, data in _cases():
        loss = _criterion(data)
        targets = prepare_targets(data["frames"])
        size = loss.dn_layout(targets).size
        preds, matching = data["preds"], data["matching"]
        for layer, expected in enumerate(matching["ota_indices_per_layer"]):
            logits = preds["logits_all_layers"][layer][:, size:]
            matches = loss.match(logits, preds["boxes_all_layers"][layer][:, size:], targets)
            ours = [[m.queries.tolist(), m.objects.tolist()] for m in matches]
            assert ours == _pairs(expected), f"{case} layer {layer}"
        best = [m.best.tolist() for m in matches]
        assert best == [q.tolist() for q in matching["ota_matched_query_id_last_layer"]], case
        enc = loss.match_encoder(preds["enc_logits"], preds["enc_boxes"], targets)
        assert _pairs(enc) == _pairs(matching["enc_hungarian_indices"]), case


@pytest.mark.parity
def test_every_loss_call_uses_upstreams_indices() -> None:
    """Upstream's criterion calls, in order: the last layer's labelsVL, boxes, masks, reid; each
    auxiliary layer's labelsVL, boxes, masks; the encoder's and each DN layer's labelsVL, boxes."""
    for case, data in _cases():
        _, _, _, indices = _run(data)
        *aux, last = indices["decoder"]
        expected = [last] * 4 + [layer for layer in aux for _ in range(3)]
        expected += [indices["enc"]] * 2 + [indices["dn"]] * 2 * (len(aux) + 1)
        calls = data["matching"]["get_loss_calls"]
        assert len(calls) == len(expected), case
        for call, ours in zip(calls, expected, strict=True):
            assert _pairs(ours) == _pairs(call["indices"]), f"{case} {call['loss']}"


@pytest.mark.parity
def test_reid_selection_matches_upstream() -> None:
    for case, data in _cases():
        targets = prepare_targets(data["frames"])
        preds = data["preds"]
        for clip, (positives, overlapping) in enumerate(data["reid"]["pos_neg_masks"]):
            ours = reid_selection(
                preds["ref_cls"][clip], preds["ref_boxes"][clip], targets.ref[clip]
            )
            kept = [s for s in ours if s is not None]
            # upstream stores one empty placeholder for an image without objects
            mine = [[m.tolist() for m in pair] for pair in kept]
            stored = [
                [p.tolist(), o.tolist()]
                for p, o in zip(positives, overlapping, strict=True)
                if p.numel()
            ]
            assert mine == stored, f"{case} clip {clip}"


@pytest.mark.parity
def test_losses_and_total_match_upstream() -> None:
    worst = 0.0
    for case, data in _cases():
        loss, _, losses, _ = _run(data)
        assert list(losses) == list(data["losses_unweighted"]), case
        for name, expected in data["losses_unweighted"].items():
            actual = losses[name].detach()
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=0, msg=f"{case} {name}")
            weighted = loss.weight_dict[name] * actual
            torch.testing.assert_close(weighted, data["losses_weighted"][name], rtol=1e-5, atol=0)
            worst = max(worst, ((actual - expected).abs() / expected.abs()).item())
        total = loss.total(losses).detach()
        torch.testing.assert_close(total, data["total"], rtol=1e-5, atol=0, msg=case)
    print(f"max relative loss error {worst:.2e}")


@pytest.mark.parity
def test_gradients_match_upstream() -> None:
    for case, data in _cases():
        loss, leaves, losses, _ = _run(data)
        loss.total(losses).backward()
        for key, expected in data["grads"].items():
            if key == "masks":
                for layer, images in enumerate(expected):
                    for image, grad in enumerate(images):
                        what = f"{case} masks[{layer}][{image}]"
                        _close_to_max(leaves[key][layer][image].grad, grad, what)
            elif isinstance(expected, list):
                for layer, grad in enumerate(expected):
                    _close_to_max(leaves[key][layer].grad, grad, f"{case} {key}[{layer}]")
            else:
                _close_to_max(leaves[key].grad, expected, f"{case} {key}")


# ---------------------------------------------------------------- pieces


def test_dynamic_k_is_the_integer_part_of_the_top_ious_at_least_one() -> None:
    iou = torch.zeros(20, 3)
    iou[:12, 0] = 0.35  # top 10: 3.5 -> 3
    iou[0, 1] = 0.2  # 0.2 -> 1
    assert dynamic_ks(iou, 10).tolist() == [3, 1, 1]
    assert dynamic_ks(iou[:4], 10).tolist() == [1, 1, 1]  # fewer queries than candidates: 1.4
    assert dynamic_ks(iou, 100).tolist() == [4, 1, 1]  # all 12: 4.2


def test_assignment_takes_the_k_cheapest_and_resolves_conflicts() -> None:
    cost = torch.tensor([[0.0, 1.0], [1.0, 0.5], [2.0, 3.0], [3.0, 2.0]])
    iou = torch.tensor([[0.9, 0.0], [0.9, 0.0], [0.0, 0.2], [0.0, 0.0]])
    assigned, _ = dynamic_k_assignment(cost, iou, 10)  # k = 1 and 1
    assert assigned.tolist() == [[True, False], [False, True], [False, False], [False, False]]
    iou[2, 0] = 0.3  # k = 2 for object 0: queries 0, 1; query 1 is cheaper for object 1
    assigned, _ = dynamic_k_assignment(cost, iou, 10)
    assert assigned.nonzero().tolist() == [[0, 0], [1, 1]]


def test_an_object_left_without_a_query_takes_the_cheapest_free_one() -> None:
    cost = torch.tensor([[0.0, 0.1], [5.0, 4.0], [9.0, 3.0]])
    iou = torch.ones(3, 2) * 0.1
    assigned, penalised = dynamic_k_assignment(cost, iou, 10)  # both want query 0; 0 keeps it
    assert assigned.nonzero().tolist() == [[0, 0], [2, 1]]
    assert penalised[0, 1] == pytest.approx(0.1 + 1e5)
    with pytest.raises(ValueError, match="3 objects for 2 queries"):
        dynamic_k_assignment(torch.zeros(2, 3), torch.zeros(2, 3), 10)


def test_simota_match_of_one_object() -> None:
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]])
    logits = torch.tensor([[2.0], [-2.0], [3.0]])
    match = simota_match(logits.sigmoid(), boxes, boxes[:1], torch.ones(1, 1, dtype=torch.bool), 10)
    assert match.queries.tolist() == [0]  # k = int(1 + IoU(q1)) = 1; q2 is off-centre
    assert match.objects.tolist() == [0] and match.best.tolist() == [0]
    empty = simota_match(logits.sigmoid(), boxes, boxes[:0], torch.ones(0, 1, dtype=torch.bool), 10)
    assert empty.queries.numel() == 0 and empty.best.numel() == 0


def test_iou_and_giou_without_and_with_fvcores_eps() -> None:
    a = torch.tensor([0.0, 0.0, 2.0, 2.0])
    b = torch.tensor([1.0, 1.0, 3.0, 3.0])
    iou, giou = iou_and_giou(a, b)
    assert iou.item() == pytest.approx(1 / 7) and giou.item() == pytest.approx(1 / 7 - 2 / 9)
    far = torch.tensor([4.0, 4.0, 4.0, 4.0])  # degenerate box: fvcore's eps keeps it finite
    assert torch.isfinite(torch.stack(iou_and_giou(far, far, 1e-7))).all()


def test_dn_layout_groups_and_positive_slots() -> None:
    layout = dn_layout([1, 2], dn_number=3)  # 6 // 4 = 1 group of 4 slots
    assert (layout.groups, layout.group_size, layout.size) == (1, 4, 4)
    assert dn_layout([1, 1], dn_number=3) == DNLayout(groups=3, group_size=2)
    assert dn_layout([1], dn_number=100).size == 200
    assert dn_layout([3], dn_number=1).groups == 1  # at least one group
    assert dn_layout([0, 0], dn_number=100).size == 0  # upstream crashes here
    slots, objects = DNLayout(groups=3, group_size=4).positives(2)
    assert slots.tolist() == [0, 1, 4, 5, 8, 9] and objects.tolist() == [0, 1] * 3


def test_negative_count() -> None:
    assert [negative_count(p, n) for p, n in [(0, 50), (2, 50), (5, 30), (3, 30)]] == [
        10,
        20,
        30,
        30,
    ]


def test_reid_losses_of_a_hand_made_item() -> None:
    item = ReidItem(
        contrast=torch.tensor([2.0, 1.0, 0.5]), positives=1, cosine=torch.tensor([0.5, 0.5])
    )
    losses = reid_losses([item], torch.zeros(1))
    expected = math.log(1 + math.exp(-1.0) + math.exp(-1.5))
    assert losses["loss_reid"].item() == pytest.approx(expected)
    assert losses["loss_reid_aux"].item() == pytest.approx((0.25 + 0.25) / 2)
    empty = reid_losses([], torch.ones(2, requires_grad=True))
    assert empty["loss_reid"].item() == 0 and empty["loss_reid"].requires_grad


def _clip(valid: Sequence[int], size: tuple[int, int] = (40, 56)) -> Clip:
    length = len(valid)
    masks = torch.zeros(length, *size, dtype=torch.bool)
    for frame, visible in enumerate(valid):
        if visible:
            masks[frame, 3 + frame : 11, 5 : 20 + frame] = True
    return Clip(
        frames=torch.zeros(length, 3, *size),
        masks=masks,
        boxes=torch.zeros(length, 4),
        valid=torch.tensor(valid, dtype=torch.int32),
        caption="a thing",
        frame_ids=torch.arange(length),
        orig_size=size,
        source="synthetic",
    )


def test_targets_from_clips() -> None:
    loss = criterion("uninext")
    targets = loss.targets([_clip([1, 1]), _clip([0, 1], size=(70, 33))])
    assert [len(t["labels"]) for t in targets.key] == [1, 0]  # key-frame invalid: removed
    assert [len(t["labels"]) for t in targets.ref] == [1, 0]
    assert targets.key[0]["bboxes_unorm"].tolist() == [[5.0, 3.0, 20.0, 11.0]]  # exclusive ends
    assert targets.key[0]["masks"].shape[1:] == (96, 64)  # the batch's largest frame, /32
    assert targets.key[0]["boxes"][0].tolist() == pytest.approx(
        [12.5 / 56, 7 / 40, 15 / 56, 8 / 40]
    )
    assert loss.count(targets) == 1
    with pytest.raises(ValueError, match="2 frames"):
        loss.targets([_clip([1, 1, 1])])


def test_registry_and_settings() -> None:
    settings = settings_for("uninext", {"dn_number": 3, "weight_boxiou": 0}, dec_layers=2)
    assert settings == UNINEXTLossSettings(dn_number=3, weight_boxiou=0.0, dec_layers=2)
    loss = criterion("uninext", settings)
    assert isinstance(loss, UNINEXTCriterion) and loss.weight_dict["loss_boxiou_0"] == 0.0
    with pytest.raises(ConfigError, match="no weight"):
        loss.total({"loss_unknown": torch.zeros(())})
    with pytest.raises(ConfigError, match="dn_number"):
        UNINEXTLossSettings(dn_number=0)


def _synthetic_outputs(loss: UNINEXTCriterion, targets: Any, queries: int) -> dict[str, Any]:
    """Random outputs of the right structure for ``targets`` (masks of 4 × 4 pixels)."""
    gen = torch.Generator().manual_seed(0)
    batch, layers = len(targets.key), loss.settings.dec_layers
    slots = loss.dn_layout(targets).size + queries

    def leaf(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen).requires_grad_()

    def boxes(*shape: int) -> Tensor:
        return torch.rand(*shape, 4, generator=gen).mul(0.5).add(0.25).requires_grad_()

    height, width = (size // MASK_OUT_STRIDE for size in targets.key[0]["masks"].shape[1:])
    return {
        "pred_logits": [leaf(batch, slots, 1) for _ in range(layers)],
        "pred_boxes": [boxes(batch, slots) for _ in range(layers)],
        "pred_ious": [leaf(batch, slots, 1) for _ in range(layers)],
        "mask_logits": lambda layer, indices: leaf(sum(len(q) for q, _ in indices), height, width),
        "enc_logits": leaf(batch, 8, 1),
        "enc_boxes": boxes(batch, 8),
        "key_embeds": leaf(batch, queries, 4),
        "ref_embeds": leaf(batch, queries, 4),
        "ref_boxes": boxes(batch, queries).detach(),
        "ref_scores": torch.rand(batch, queries, 1, generator=gen),
    }


@pytest.mark.parametrize("valid", [[[1, 1], [1, 1]], [[0, 1], [0, 1]]])
def test_a_batch_of_clips_gives_every_weighted_loss_and_gradients(valid: list[list[int]]) -> None:
    """Fewer than 100 queries work; a batch without objects gives zero losses (upstream
    crashes in both cases)."""
    loss = criterion("uninext", UNINEXTLossSettings(dn_number=3, dec_layers=2))
    targets = loss.targets([_clip(v) for v in valid])
    outputs = _synthetic_outputs(loss, targets, queries=30)
    losses, indices = loss(outputs, targets)
    assert set(losses) <= set(loss.weight_dict) and len(losses) == 23
    total = loss.total(losses)
    total.backward()
    assert torch.isfinite(total)
    assert outputs["pred_logits"][0].grad is not None
    if loss.count(targets) == 0:
        assert total.item() == 0 and not any(len(q) for q, _ in indices["dn"])


UPSTREAM_RVOS_CONFIG = {
    # uninext/config.py defaults
    "MODEL.BOXINST.ENABLED": False,
    "MODEL.DDETRS.MASK_WEIGHT": 2.0,
    "MODEL.DDETRS.DICE_WEIGHT": 5.0,
    "MODEL.DDETRS.GIOU_WEIGHT": 2.0,
    "MODEL.DDETRS.L1_WEIGHT": 5.0,
    "MODEL.DDETRS.CLASS_WEIGHT": 2.0,
    "MODEL.DDETRS.REID_WEIGHT": 2.0,
    "MODEL.DDETRS.DEEP_SUPERVISION": True,
    "MODEL.DDETRS.MASK_STRIDE": 4,
    "MODEL.DDETRS.FOCAL_ALPHA": 0.25,
    "MODEL.DDETRS.SET_COST_CLASS": 2,
    "MODEL.DDETRS.SET_COST_BOX": 5,
    "MODEL.DDETRS.SET_COST_GIOU": 2,
    "MODEL.DDETRS.DEC_LAYERS": 6,
    "MODEL.DDETRS.DN_NUMBER": 100,
    # configs/video_joint_r50.yaml
    "MODEL.USE_IOU_BRANCH": True,
    "MODEL.OTA": True,
    "MODEL.STILL_CLS_FOR_ENCODER": True,
    "MODEL.DDETRS.USE_DINO": True,
    "MODEL.DDETRS.TWO_STAGE": True,
}
"""Upstream's RVOS training configuration, the loss options (github:RobertLuo1/
iccv2023_RVOS_Challenge @ c538b0dc, UNINEXT/projects/UNINEXT)."""


def test_settings_from_upstreams_configuration_are_the_defaults() -> None:
    assert UNINEXTLossSettings.from_upstream(UPSTREAM_RVOS_CONFIG) == UNINEXTLossSettings()
    small = UNINEXTLossSettings.from_upstream(UPSTREAM_RVOS_CONFIG, dec_layers=2)
    assert small.dec_layers == 2
    with pytest.raises(ConfigError, match=r"MODEL\.OTA"):
        UNINEXTLossSettings.from_upstream({**UPSTREAM_RVOS_CONFIG, "MODEL.OTA": False})
    for option in ("SET_COST_BOX", "DN_NUMBER"):
        config = {k: v for k, v in UPSTREAM_RVOS_CONFIG.items() if option not in k}
        with pytest.raises(ConfigError, match=option):
            UNINEXTLossSettings.from_upstream(config)
