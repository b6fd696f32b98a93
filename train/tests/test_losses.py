"""The training losses on synthetic clips: switches, the count helper, unequal visibility,
targets from clips, no mutation of the inputs, the registry."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import Tensor

from rvos_core.errors import ConfigError
from rvos_core.testing import parity_dir
from rvos_nn.training import Clip
from rvos_train.losses import (
    Criterion,
    ReferFormerLossSettings,
    SOCLossSettings,
    criterion,
)
from rvos_train.losses.common import average_count

QUERIES = 4
WIDTH = 8
SIZE = (32, 64)
FAMILIES = ("referformer", "soc")


def _clip(valid: Sequence[int], seed: int, size: tuple[int, int] = SIZE) -> Clip:
    """A clip with a random rectangle (and its box) on the frames where ``valid`` is 1."""
    gen = torch.Generator().manual_seed(seed)
    length, (height, width) = len(valid), size
    masks = torch.zeros(length, height, width, dtype=torch.bool)
    boxes = torch.zeros(length, 4)
    for frame in (t for t, v in enumerate(valid) if v):
        top, left = (int(torch.randint(0, limit // 2, (1,), generator=gen)) for limit in size)
        bottom, right = top + height // 3, left + width // 3
        masks[frame, top:bottom, left:right] = True
        boxes[frame] = torch.tensor(
            [
                (left + right) / 2 / width,
                (top + bottom) / 2 / height,
                (right - left) / width,
                (bottom - top) / height,
            ]
        )
    return Clip(
        frames=torch.randn(length, 3, height, width, generator=gen),
        masks=masks,
        boxes=boxes,
        valid=torch.tensor(valid, dtype=torch.int32),
        caption="a synthetic object",
        frame_ids=torch.arange(length, dtype=torch.int64),
        orig_size=(2 * height, 2 * width),
        source=f"synthetic/{seed}",
    )


def _layer(
    family: str, batch: int, length: int, mask_size: tuple[int, int], gen: torch.Generator
) -> dict[str, Tensor]:
    """Random leaf outputs (requiring gradients) of one decoder layer in the family's layout."""

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen)

    if family == "referformer":
        layer = {
            "pred_logits": randn(batch, length, QUERIES, 1),
            "pred_boxes": randn(batch, length, QUERIES, 4).sigmoid(),
            "pred_masks": randn(batch, length, QUERIES, *mask_size),
        }
    else:
        layer = {
            "pred_masks": randn(length, batch, QUERIES, *mask_size),
            "pred_logit": randn(batch, QUERIES, WIDTH),
            "pred_boxes": randn(length, batch, QUERIES, 4).sigmoid(),
            "pred_is_referred": randn(length, batch, QUERIES, 1),
        }
    return {key: value.requires_grad_() for key, value in layer.items()}


def _outputs(family: str, clips: Sequence[Clip], layers: int = 3, seed: int = 0) -> dict[str, Any]:
    """Outputs for ``clips`` with ``layers`` decoder layers; SOC's text feature is one tensor
    shared by every layer."""
    gen = torch.Generator().manual_seed(seed)
    height, width = (max(c.size[i] for c in clips) for i in (0, 1))
    if family == "referformer":
        mask_size = (-(-height // 32) * 8, -(-width // 32) * 8)
    else:
        mask_size = (-(-height // 4), -(-width // 4))
    shape = (family, len(clips), len(clips[0].valid), mask_size, gen)
    outputs: dict[str, Any] = _layer(*shape)
    outputs["aux_outputs"] = [_layer(*shape) for _ in range(layers - 1)]
    if family == "soc":
        text = torch.randn(len(clips), WIDTH, generator=gen).requires_grad_()
        for layer in [outputs, *outputs["aux_outputs"]]:
            layer["text_sentence_feature"] = text
    return outputs


def _settings(family: str, **changes: Any) -> ReferFormerLossSettings | SOCLossSettings:
    if family == "referformer":
        return ReferFormerLossSettings(dec_layers=3, **changes)
    return SOCLossSettings(dec_layers=3, **changes)


def _run(
    family: str, clips: Sequence[Clip], seed: int = 0, **changes: Any
) -> tuple[Criterion, dict, dict, dict]:
    """(criterion, outputs, losses, indices) for ``clips``."""
    loss = criterion(family, _settings(family, **changes))
    outputs = _outputs(family, clips, seed=seed)
    losses, indices = loss(outputs, loss.targets(clips))
    return loss, outputs, losses, indices


def _box_grad(family: str, layer: dict[str, Tensor], clip: int, frame: int, query: int) -> Tensor:
    """The gradient of one predicted box, [4]."""
    grad = layer["pred_boxes"].grad
    return grad[clip, frame, query] if family == "referformer" else grad[frame, clip, query]


# ---------------------------------------------------------------- registry and settings


def test_registry_builds_both_families_with_upstream_weights() -> None:
    referformer, soc = criterion("referformer"), criterion("soc")
    # ReferFormer opts.py: 4 decoder layers, weights ce 2, bbox 5, giou 2, mask 2, dice 5
    assert len(referformer.weight_dict) == 5 * 4
    assert referformer.weight_dict["loss_bbox_2"] == 5 and referformer.weight_dict["loss_ce"] == 2
    # SOC joint.yaml: 3 decoder layers, text 1, dice 5, focal 2, label 2, bbox 2, giou 2
    assert len(soc.weight_dict) == 6 * 3
    assert soc.weight_dict["loss_is_referred_1"] == 1 and soc.weight_dict["loss_dice"] == 5


def test_registry_rejects_unknown_names_and_foreign_settings() -> None:
    with pytest.raises(ConfigError, match="unknown loss family"):
        criterion("mttr")
    with pytest.raises(ConfigError, match="SOCLossSettings"):
        criterion("soc", ReferFormerLossSettings())


def test_settings_refuse_what_is_not_reproduced() -> None:
    with pytest.raises(ConfigError, match="binary"):
        ReferFormerLossSettings.from_upstream({"binary": False, "aux_loss": True, "dec_layers": 4})
    with pytest.raises(ConfigError, match="text_refer_loss"):
        SOCLossSettings.from_upstream({"text_refer_loss": False})
    with pytest.raises(ConfigError, match="cost"):
        SOCLossSettings(cost_class=0, cost_dice=0, cost_box=0, cost_giou=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_aux_layers_follow_the_settings(family: str) -> None:
    clips = [_clip([1, 1], seed=1)]
    loss = criterion(family, _settings(family, aux_loss=False))
    losses, indices = loss(_outputs(family, clips), loss.targets(clips))
    assert set(losses) == set(loss.weight_dict) and not any(name[-1].isdigit() for name in losses)
    assert indices["aux"] == []
    three_layers = criterion(family, _settings(family))
    with pytest.raises(ValueError, match="aux_outputs"):
        three_layers(_outputs(family, clips, layers=2), three_layers.targets(clips))


@pytest.mark.parametrize("family", FAMILIES)
def test_total_is_the_weighted_sum_and_needs_every_weight(family: str) -> None:
    loss, _, losses, _ = _run(family, [_clip([1, 0, 1], seed=2)])
    expected = sum(loss.weight_dict[name] * value for name, value in losses.items())
    torch.testing.assert_close(loss.total(losses), expected)
    with pytest.raises(ConfigError, match="no weight"):
        loss.total({**losses, "loss_extra": losses[next(iter(losses))]})


def test_soc_skips_loss_groups_whose_weights_are_zero() -> None:
    _, _, losses, _ = _run(
        "soc", [_clip([1, 1], seed=3)], weight_text=0.0, weight_bbox=0.0, weight_giou=0.0
    )
    assert not any(
        name.startswith(("loss_is_referred", "loss_bbox", "loss_giou")) for name in losses
    )
    assert "loss_label_1" in losses and "loss_dice_0" in losses


def test_referformer_focal_alpha_changes_only_the_class_loss() -> None:
    clips = [_clip([1, 0, 1], seed=4)]
    _, _, default, _ = _run("referformer", clips)
    _, _, other, _ = _run("referformer", clips, focal_alpha=0.5)
    changed = {name for name in default if not torch.equal(default[name], other[name])}
    assert changed == {"loss_ce", "loss_ce_0", "loss_ce_1"}


def test_soc_text_cost_matches_the_most_similar_query() -> None:
    clips = [_clip([1, 1], seed=5), _clip([0, 1], seed=6)]
    zero = {"cost_class": 0.0, "cost_dice": 0.0, "cost_box": 0.0, "cost_giou": 0.0}
    _, outputs, _, indices = _run("soc", clips, cost_text=1.0, **zero)
    similarity = outputs["pred_logit"] @ outputs["text_sentence_feature"].unsqueeze(-1)
    assert [int(src) for src, _ in indices["final"]] == similarity.squeeze(-1).argmax(-1).tolist()


# ---------------------------------------------------------------- the absent_box_terms switch


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("absent_box_terms", [True, False])
def test_absent_box_terms_decides_whether_absent_frames_pull_the_box(
    family: str, absent_box_terms: bool
) -> None:
    clips = [_clip([1, 0, 1], seed=7), _clip([1, 1, 0], seed=8)]
    loss, outputs, losses, indices = _run(family, clips, absent_box_terms=absent_box_terms)
    loss.total(losses).backward()
    layers = [
        (outputs, indices["final"]),
        *zip(outputs["aux_outputs"], indices["aux"], strict=True),
    ]
    for layer, layer_indices in layers:
        for clip, frame in ((0, 1), (1, 2)):  # the absent frames
            grad = _box_grad(family, layer, clip, frame, int(layer_indices[clip][0]))
            assert bool(grad.abs().sum() > 0) is absent_box_terms


@pytest.mark.parametrize("family", FAMILIES)
def test_without_absent_box_terms_absent_boxes_change_no_cost_and_no_loss(family: str) -> None:
    clips = [_clip([1, 0, 1], seed=9)]
    loss = criterion(family, _settings(family, absent_box_terms=False))
    outputs = _outputs(family, clips)
    moved = copy.deepcopy({k: v.detach() for k, v in outputs.items() if k != "aux_outputs"})
    absent = (slice(None), 1) if family == "referformer" else (1, slice(None))
    moved["pred_boxes"][absent] = 0.5
    last = {k: v.detach() for k, v in outputs.items() if k != "aux_outputs"}
    before, after = loss.match(last, loss.targets(clips)), loss.match(moved, loss.targets(clips))
    torch.testing.assert_close(before.cost, after.cost)
    with_aux = {**moved, "aux_outputs": outputs["aux_outputs"]}
    losses_before, losses_after = (
        loss(outputs, loss.targets(clips))[0],
        loss(with_aux, loss.targets(clips))[0],
    )
    for name in ("loss_bbox", "loss_giou"):
        torch.testing.assert_close(losses_before[name], losses_after[name])


# ---------------------------------------------------------------- batches upstream cannot take


def test_soc_unequal_visibility_gives_each_clip_its_own_matching() -> None:
    """Upstream crashes here; each clip's costs equal those of the clip matched alone."""
    clips = [_clip([1, 1, 0], seed=10), _clip([0, 0, 1], seed=11)]
    loss = criterion("soc", _settings("soc"))
    outputs = _outputs("soc", clips)
    last = {k: v.detach() for k, v in outputs.items() if k != "aux_outputs"}
    together = loss.match(last, loss.targets(clips))
    for index, clip in enumerate(clips):
        alone = {
            k: v[:, index : index + 1] if v.ndim >= 4 else v[index : index + 1]
            for k, v in last.items()
        }
        torch.testing.assert_close(
            together.cost[index], loss.match(alone, loss.targets([clip])).cost[0]
        )
    losses, _ = loss(outputs, loss.targets(clips))
    assert all(torch.isfinite(value) for value in losses.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_a_clip_without_a_visible_frame_is_scored(family: str) -> None:
    clips = [_clip([0, 0, 0], seed=12), _clip([1, 0, 1], seed=13)]
    loss, _, losses, _ = _run(family, clips)
    assert all(torch.isfinite(value) for value in losses.values())
    loss.total(losses).backward()


def test_referformer_refuses_masks_of_another_size() -> None:
    clips = [_clip([1, 1], seed=14)]
    loss = criterion("referformer", _settings("referformer"))
    outputs = _outputs("referformer", [_clip([1, 1], seed=14, size=(64, 64))])
    with pytest.raises(ValueError, match="predicted masks"):
        loss(outputs, loss.targets(clips))


# ---------------------------------------------------------------- the count helper


def test_average_count_without_a_process_group_clamps_to_one() -> None:
    assert average_count(5, torch.device("cpu")) == 5.0
    assert average_count(0, torch.device("cpu")) == 1.0


def test_average_count_all_reduces_and_divides_by_the_world_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def all_reduce(tensor: Tensor) -> None:  # the other process counted 7
        tensor += 7

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    assert average_count(3, torch.device("cpu")) == 5.0


# ---------------------------------------------------------------- targets and inputs


def _structure(value: Any) -> Any:
    """Keys, types and tensor dtypes / ranks of a target structure (not its values)."""
    if isinstance(value, dict):
        return {key: _structure(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        return [_structure(item) for item in value]
    if isinstance(value, Tensor):
        return (value.dtype, value.ndim)
    return (type(value).__name__, len(value) if isinstance(value, list) else None)


def _fixture_targets(folder: str) -> Any:
    return torch.load(sorted(parity_dir(folder).glob("case_*.pt"))[-1], weights_only=True)[
        "targets"
    ]


@pytest.mark.parity
def test_referformer_targets_have_the_fixtures_structure() -> None:
    expected = _fixture_targets("train_referformer")
    length = len(expected[0]["valid"])
    clips = [_clip([1] * length, seed=seed) for seed in range(len(expected))]
    assert _structure(criterion("referformer").targets(clips)) == _structure(expected)


@pytest.mark.parity
def test_soc_targets_have_the_fixtures_structure() -> None:
    expected = _fixture_targets("train_soc")
    clips = [_clip([1] * len(expected), seed=seed) for seed in range(len(expected[0]))]
    assert _structure(criterion("soc").targets(clips)) == _structure(expected)


def test_targets_carry_the_clips_contents() -> None:
    clips = [_clip([1, 0, 1], seed=15), _clip([0, 1, 1], seed=16, size=(24, 40))]
    referformer = criterion("referformer").targets(clips)
    soc = criterion("soc").targets(clips)
    for index, clip in enumerate(clips):
        assert torch.equal(referformer[index]["masks"], clip.masks)
        assert torch.equal(referformer[index]["valid"], clip.valid)
        assert referformer[index]["size"].tolist() == list(clip.size)
        for frame in range(3):
            target = soc[frame][index]
            assert torch.equal(target["masks"][0], clip.masks[frame])
            assert torch.equal(target["boxes"][0], clip.boxes[frame])
            assert bool(target["is_ref_inst_visible"]) == bool(clip.valid[frame])
    with pytest.raises(ValueError, match="one length"):
        criterion("soc").targets([clips[0], _clip([1, 1], seed=17)])


def _snapshot(value: Any) -> Any:
    """Identities and copies of every tensor in a nested structure, with the containers' keys."""
    if isinstance(value, dict):
        return ("dict", list(value), [_snapshot(item) for item in value.values()])
    if isinstance(value, list):
        return ("list", [_snapshot(item) for item in value])
    if isinstance(value, Tensor):
        return (id(value), value.detach().clone())
    return value


def _same(before: Any, after: Any) -> bool:
    if isinstance(before, tuple) and len(before) == 2 and isinstance(before[1], Tensor):
        return before[0] == after[0] and torch.equal(before[1], after[1])
    if isinstance(before, (tuple, list)):
        return len(before) == len(after) and all(
            _same(b, a) for b, a in zip(before, after, strict=True)
        )
    return before == after


@pytest.mark.parametrize("family", FAMILIES)
def test_the_criterion_does_not_modify_its_inputs(family: str) -> None:
    clips = [_clip([1, 0, 1], seed=18), _clip([1, 1, 1], seed=19, size=(24, 40))]
    loss = criterion(family, _settings(family))
    outputs, targets = _outputs(family, clips), loss.targets(clips)
    before = _snapshot({"outputs": outputs, "targets": targets})
    loss.total(loss(outputs, targets)[0]).backward()
    assert _same(before, _snapshot({"outputs": outputs, "targets": targets}))
