"""One training iteration of AOT and DeAOT against the ``train_aot/{aot,deaot}`` fixtures (their
README.md files define the semantics and tolerances): per-frame logits, predicted masks and losses,
the step's losses, the memory schedule, every gradient, one AdamW step, the schedules and the
optimizer groups. Everything is read from each fixture's own files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from rvos_core.testing import parity_dir
from rvos_nn.checkpoint import load_state_dict_strict
from rvos_vos.layers import RandomMask
from rvos_vos.network import PropagationNet
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.training import (
    DropoutRates,
    StepOutput,
    StepSettings,
    TrainingForward,
    TrainSchedule,
    build_optimizer,
    freeze_encoder_stages,
    set_dropout_rates,
    set_learning_rates,
)
from rvos_vos.training.optim import lr_kind, weight_decay_for

pytestmark = pytest.mark.parity

MODELS = ("aot", "deaot")
LOGITS = {"atol": 1e-4, "rtol": 1e-4}
LOSSES = {"atol": 2e-5, "rtol": 1e-5}
GRAD_NORM_RTOL = 1e-4
GRAD_NORM_ATOL = 1e-5  # times the total gradient norm
GRAD_REL, GRAD_GLOBAL = 1e-4, 1e-5  # per tensor: REL·max|g_ref| + GLOBAL·max over all tensors
MARGIN = 1e-4  # predicted masks are compared where the stored top-1 - top-2 gap exceeds this
ADAMW_ATOL, ADAMW_MIN_GRAD = 1e-3, 1e-5  # times the group LR; where |g| > MIN_GRAD
LR_RTOL = 1e-12


def _fixture(model: str) -> Path:
    return parity_dir(f"train_aot/{model}")


def _json(fixture: Path, name: str) -> dict[str, Any]:
    return json.loads((fixture / name).read_text())


def _load(fixture: Path, name: str) -> Any:
    return torch.load(fixture / name, weights_only=True)


def _steps(fixture: Path, stochastic: bool) -> list[str]:
    """The step files of config.json: deterministic ones, or those with recorded random masks."""
    steps = _json(fixture, "config.json")["steps"]
    return [s["file"] for s in steps if ("random_mask_calls" in s) == stochastic]


def _schedule(fixture: Path) -> TrainSchedule:
    return TrainSchedule.from_upstream(_json(fixture, "config.json")["cfg_pre_ytb_dav"])


def _network(fixture: Path, model: str) -> tuple[PropagationNet, Propagator]:
    """The tiny network of base_config.json, base weights with the overrides, in train mode and
    with the encoder parts of TRAIN_ENCODER_FREEZE_AT frozen."""
    base = _json(fixture, "base_config.json")
    upstream = {
        **base["cfg_dump_bidirectional_run"],
        "swin": base["tiny_vs_full"]["swin_encoder"]["tiny"],
    }
    propagator = load_propagator(model)
    net = propagator.build(propagator.config_type.from_upstream(upstream))
    state = {**_load(fixture, "base_state_dict.pt"), **_load(fixture, "weight_overrides.pt")}
    load_state_dict_strict(net, state, propagator.rules, str(fixture))
    freeze_at = _json(fixture, "config.json")["cfg_pre_ytb_dav"]["TRAIN_ENCODER_FREEZE_AT"]
    freeze_encoder_stages(net, freeze_at)
    return net.train(), propagator


def _ignored(propagator: Propagator, name: str) -> bool:
    return any(re.fullmatch(rule.pattern, name) for rule in propagator.rules.ignore)


def _forward(
    fixture: Path, net: PropagationNet, ref: dict[str, Any], replay: _Replay | None = None
) -> StepOutput:
    """The training forward of a stored step (its id shuffle injected), then backward. In
    sequential training, if a fed-back mask differs from the stored one (a near-tie pixel), the
    step is rerun with the stored masks written to memory (README)."""
    batch = _load(fixture, "batch.pt")
    settings = StepSettings.at(_schedule(fixture), ref["step"])
    forward = TrainingForward(net, ref["obj_nums"], ref["id_shuffle_matrix"], settings)
    frames, labels = batch["frames_normalized"], batch["labels"]
    out = forward(frames, labels)
    stored = torch.stack([f["pred_mask"].long() for f in ref["frames"]])
    fed_back = zip(out.frames[:-1], stored[:-1], strict=True)
    if settings.sequential and any(not torch.equal(o.pred_mask, s) for o, s in fed_back):
        if replay is not None:
            replay.used = 0
        out = forward(frames, labels, forced_predictions=stored)
    out.loss.backward()
    return out


def _decided(stored_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """bool [B, H, W]: pixels whose stored upsampled top-1 - top-2 gap exceeds MARGIN."""
    up = F.interpolate(stored_logits, size=size, mode="bilinear", align_corners=False)
    top = up.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]) > MARGIN


def _check_frames(out: StepOutput, ref: dict, size: tuple[int, int]) -> None:
    for t, (ours, theirs) in enumerate(zip(out.frames, ref["frames"], strict=True)):
        for b, obj_num in enumerate(ref["obj_nums"]):
            live = slice(0, obj_num + 1)
            torch.testing.assert_close(
                ours.logits[b, live],
                theirs["logits_lowres"][b, live],
                **LOGITS,
                msg=f"frame {t} sample {b} logits",
            )
        decided = _decided(theirs["logits_lowres"], size)
        flips = (ours.pred_mask != theirs["pred_mask"].long()) & decided
        assert not flips.any(), f"frame {t}: {int(flips.sum())} decided mask pixels differ"
        for key, ours_v in (
            ("ce_topk", ours.losses.ce),
            ("jaccard", ours.losses.jaccard),
            ("frame_loss", ours.losses.total),
        ):
            torch.testing.assert_close(
                ours_v.double(), theirs[key], **LOSSES, msg=f"frame {t} {key}"
            )


def _check_step_values(fixture: Path, out: StepOutput, ref: dict, num_pixels: int) -> None:
    schedule = _schedule(fixture)
    step = ref["step"]
    assert schedule.sequential(step) == ref["use_prev_pred"]
    assert schedule.aux_weight(step) == pytest.approx(ref["aux_weight"], rel=LR_RTOL)
    assert schedule.topk_fraction(step) == pytest.approx(ref["topk_fraction"], rel=LR_RTOL)
    assert schedule.topk_count(step, num_pixels) == ref["topk_k"]
    assert schedule.base_lr(step) == pytest.approx(ref["lr"], rel=LR_RTOL)
    assert schedule.frozen_names(step) == tuple(ref["freeze_params"])
    for key, value in (
        ("aux_loss", out.aux_loss),
        ("pred_loss", out.pred_loss),
        ("total_loss", out.loss),
    ):
        torch.testing.assert_close(
            value.double(), torch.tensor(ref[key], dtype=torch.float64), **LOSSES, msg=key
        )
    log = [
        (w.after_frame, w.from_prediction, w.long_term_before, w.long_term_after, w.last_long_term)
        for w in out.memory_log
    ]
    expected = [
        (
            w["after_frame"],
            w["id_source"] == "prediction",
            w["long_term_frames_before"],
            w["long_term_frames_after"],
            w["last_mem_step"],
        )
        for w in ref["memory_log"]
    ]
    assert log == expected


def _check_gradients(net: PropagationNet, propagator: Propagator, ref: dict) -> None:
    params = dict(net.named_parameters())
    absent = set(ref["param_names"]) - set(params)
    assert all(_ignored(propagator, n) for n in absent), absent
    none = {n for n, p in params.items() if p.grad is None}
    assert none == set(ref["grad_is_none"]) - absent
    total = ref["grad_total_norm"]
    norm = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in params.values() if p.grad is not None])
    )
    assert norm.item() == pytest.approx(total, rel=GRAD_NORM_RTOL)
    for name, stored in zip(ref["grad_summary_names"], ref["grad_norm"].tolist(), strict=True):
        ours = params[name].grad.double().norm().item()
        assert abs(ours - stored) <= GRAD_NORM_RTOL * stored + GRAD_NORM_ATOL * total, name
    full = ref.get("grads", ref["grad_selected"])
    scale = (
        max(g.abs().max().item() for g in full.values())
        if "grads" in ref
        else ref["grad_absmax"].max().item()
    )
    for name, stored in full.items():
        error = (params[name].grad - stored).abs().max().item()
        assert error <= GRAD_REL * stored.abs().max().item() + GRAD_GLOBAL * scale, name


def _check_adamw(net: PropagationNet, fixture: Path, ref: dict) -> None:
    """Clip, then one AdamW step from a fresh optimizer with our groups and the step's LRs."""
    schedule = _schedule(fixture)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    optimizer = build_optimizer(net, schedule)
    set_learning_rates(optimizer, schedule, ref["step"])
    torch.nn.utils.clip_grad_norm_(net.parameters(), schedule.clip_grad_norm)
    optimizer.step()
    groups = {g["name"]: g for g in optimizer.param_groups}
    params = dict(net.named_parameters())
    for name, stored in ref["adamw_one_step"].items():
        assert groups[name]["lr"] == pytest.approx(stored["lr"], rel=LR_RTOL), name
        assert groups[name]["weight_decay"] == stored["weight_decay"], name
        if name not in grads:
            continue
        delta = params[name].detach() - before[name]
        where = grads[name].abs() > ADAMW_MIN_GRAD
        error = (delta - stored["delta"])[where].abs().max().item() if where.any() else 0.0
        assert error <= ADAMW_ATOL * stored["lr"], name


@pytest.mark.parametrize("model", MODELS)
def test_training_steps(model: str) -> None:
    """Every deterministic step of the fixture (teacher-forced and sequential)."""
    fixture = _fixture(model)
    size = tuple(_load(fixture, "batch.pt")["labels"].shape[-2:])
    steps = _steps(fixture, stochastic=False)
    assert steps, f"{fixture}: no deterministic step"
    for file in steps:
        net, propagator = _network(fixture, model)
        ref = _load(fixture, file)
        out = _forward(fixture, net, ref)
        _check_frames(out, ref, size)
        _check_step_values(fixture, out, ref, size[0] * size[1])
        _check_gradients(net, propagator, ref)
        _check_adamw(net, fixture, ref)


def _dropout_rates(fixture: Path) -> DropoutRates:
    """Upstream's sources: the encoder's drop_path_rate, TRAIN_LSTT_DROPPATH, the freeze stage."""
    cfg = _json(fixture, "config.json")["cfg_pre_ytb_dav"]
    swin = _json(fixture, "base_config.json")["tiny_vs_full"]["swin_encoder"]["tiny"]
    return DropoutRates(
        swin_drop_path=swin["drop_path_rate"],
        lstt_drop_path=cfg["TRAIN_LSTT_DROPPATH"],
        freeze_at=cfg["TRAIN_ENCODER_FREEZE_AT"],
    )


class _Replay:
    """Feeds the recorded masks to the random masks of a network, checking module and call order."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records, self.used = records, 0

    def attach(self, net: PropagationNet) -> None:
        for name, module in net.named_modules():
            if isinstance(module, RandomMask) and module.rate > 0:
                module.draw = self._drawer(name)

    def _drawer(self, name: str) -> Callable[[tuple[int, ...], float, Tensor], Tensor]:
        def draw(shape: tuple[int, ...], keep: float, like: Tensor) -> Tensor:
            assert self.used < len(self.records), f"{name}: more draws than recorded"
            record = self.records[self.used]
            self.used += 1
            assert record["module"] == name, (
                f"draw {self.used}: {name}, recorded {record['module']}"
            )
            assert keep == pytest.approx(record["keep_prob"], abs=1e-7), name
            assert tuple(record["mask"].shape) == shape, name
            return record["mask"].to(like.dtype)

        return draw


@pytest.mark.parametrize("model", MODELS)
def test_stochastic_step_replay(model: str) -> None:
    """Steps with upstream's drop-path / dropout rates: our rate per module, then the recorded masks
    replayed in call order; the same comparisons as for the deterministic steps."""
    fixture = _fixture(model)
    size = tuple(_load(fixture, "batch.pt")["labels"].shape[-2:])
    stochastic = _json(fixture, "config.json")["stochastic_modules"]
    expected = {name: rate for name, _, rate in stochastic}
    steps = _steps(fixture, stochastic=True)
    assert steps, f"{fixture}: no stochastic step"
    for file in steps:
        net, propagator = _network(fixture, model)
        rates = set_dropout_rates(net, _dropout_rates(fixture))
        assert rates.keys() == expected.keys()
        for name, rate in rates.items():
            assert rate == pytest.approx(expected[name], abs=1e-7), name
        ref = _load(fixture, file)
        replay = _Replay(ref["random_masks"])
        replay.attach(net)
        out = _forward(fixture, net, ref, replay)
        assert replay.used == len(ref["random_masks"])
        _check_frames(out, ref, size)
        _check_step_values(fixture, out, ref, size[0] * size[1])
        _check_gradients(net, propagator, ref)
        _check_adamw(net, fixture, ref)


def _variant_schedule(base: TrainSchedule, variant: str) -> TrainSchedule:
    """The LR variants of schedule.json: ``cosine_decay`` and ``restart_<n>``."""
    if variant == "cosine_decay":
        return TrainSchedule(**{**base.__dict__, "cosine_decay": True})
    restarts = re.fullmatch(r"restart_(\d+)", variant)
    assert restarts, f"unknown LR variant {variant}"
    return TrainSchedule(**{**base.__dict__, "restarts": int(restarts[1])})


@pytest.mark.parametrize("model", MODELS)
def test_schedules(model: str) -> None:
    stages = _json(_fixture(model), "schedule.json")["stages"]
    for stage, table in stages.items():
        schedule = TrainSchedule.from_upstream(table["config"])
        for row in table["rows"]:
            step = row["step"]
            msg = f"{stage} step {step}"
            assert schedule.base_lr(step) == pytest.approx(row["now_lr"], rel=LR_RTOL), msg
            assert schedule.base_lr(step) == pytest.approx(row["lr_other"], rel=LR_RTOL), msg
            assert schedule.encoder_lr(step) == pytest.approx(row["lr_encoder"], rel=LR_RTOL), msg
            assert schedule.sequential(step) == row["use_prev_pred"], msg
            frozen_lr = 0.0 if schedule.frozen_names(step) else None
            assert frozen_lr == row["lr_frozen_by_seq_training"], msg
            assert schedule.aux_weight(step) == pytest.approx(
                row["aux_weight"], rel=LR_RTOL, abs=1e-300
            ), msg
            assert schedule.topk_fraction(step) == pytest.approx(
                row["topk_fraction"], rel=LR_RTOL
            ), msg
            for key, k in row.items():  # topk_k_for_<H>x<W>: k for an H x W label
                if size := re.fullmatch(r"topk_k_for_(\d+)x(\d+)", key):
                    assert schedule.topk_count(step, int(size[1]) * int(size[2])) == k, msg
        for variant, rows in table.get("variants_not_used_by_stock_configs", {}).items():
            varied = _variant_schedule(schedule, variant)
            for row in rows:
                assert varied.base_lr(row["step"]) == pytest.approx(row["now_lr"], rel=LR_RTOL), (
                    variant,
                    row,
                )


@pytest.mark.parametrize("model", MODELS)
def test_parameter_groups(model: str) -> None:
    fixture = _fixture(model)
    net, propagator = _network(fixture, model)
    schedule = _schedule(fixture)
    ours = {g["name"]: g for g in build_optimizer(net, schedule).param_groups}
    params = dict(net.named_parameters())
    for entry in _json(fixture, "schedule.json")["param_groups_pre_ytb_dav"]:
        name = entry["name"].split(".", 1)[1]  # engine-level names: AOT.<state-dict key>
        if name not in params:
            assert _ignored(propagator, name), name
        else:
            assert params[name].requires_grad == entry["requires_grad"], name
            assert (name in ours) == entry["in_optimizer"], name
        if entry["in_optimizer"]:
            assert (
                weight_decay_for(entry["name"], len(entry["shape"]), schedule)
                == entry["weight_decay"]
            ), name
            assert lr_kind(entry["name"]) == entry["lr_kind"], name
            if name in ours:
                assert ours[name]["weight_decay"] == entry["weight_decay"], name
