"""Unit tests of rvos_vos.training on hand-made inputs and the tiny random networks."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from rvos_core.errors import ConfigError
from rvos_vos.aot.model import build as build_aot
from rvos_vos.deaot.model import build as build_deaot
from rvos_vos.layers import ChannelDropout, DropPath
from rvos_vos.network import PropagationNet
from rvos_vos.training import (
    DropoutRates,
    StepSettings,
    TrainingForward,
    TrainSchedule,
    build_optimizer,
    frame_losses,
    freeze_encoder_stages,
    random_id_shuffle,
    set_dropout_rates,
    set_learning_rates,
)
from rvos_vos.training.forward import mask_absent_ids, shuffle_ids, unshuffle_logits
from rvos_vos.training.losses import bootstrapped_cross_entropy, soft_jaccard
from rvos_vos.training.optim import frozen_encoder_prefixes, lr_kind, weight_decay_for
from rvos_vos.training.stochastic import swin_block_rates

SCHEDULE = TrainSchedule()


def test_cross_entropy_keeps_the_k_hardest_pixels_and_counts_ignored_ones() -> None:
    logits = torch.zeros(2, 1, 4)
    labels = torch.tensor([[0, 1, 255, 255]])
    ln2 = math.log(2.0)
    assert bootstrapped_cross_entropy(logits, labels, 4).item() == pytest.approx(ln2 / 2)
    assert bootstrapped_cross_entropy(logits, labels, 1).item() == pytest.approx(ln2)


def test_soft_jaccard_skips_absent_classes_and_ignored_pixels() -> None:
    logits = torch.tensor([[[9.0, -9.0, 0.0]], [[-9.0, 9.0, 0.0]], [[-9.0, -9.0, 0.0]]])
    labels = torch.tensor([[0, 1, 255]])  # class 2 absent, the third pixel ignored
    assert soft_jaccard(logits, labels).item() == pytest.approx(0.0, abs=1e-3)
    assert soft_jaccard(logits, torch.full((1, 3), 255)).item() == 0.0


def test_frame_losses_cut_the_channels_of_absent_ids() -> None:
    logits = torch.randn(2, 5, 2, 3)
    labels = torch.randint(0, 2, (2, 4, 6))
    out = frame_losses(logits, labels, [1, 4], 1.0)
    up = F.interpolate(logits, size=(4, 6), mode="bilinear", align_corners=False)
    ce0 = F.cross_entropy(up[:1, :2], labels[:1])
    torch.testing.assert_close(out.ce[0], ce0)
    torch.testing.assert_close(out.total, 0.5 * out.ce + 0.5 * out.jaccard)


def test_id_shuffle_is_a_background_fixing_permutation_undone_on_logits() -> None:
    shuffle = random_id_shuffle(3, 6, torch.Generator().manual_seed(0))
    assert torch.equal(shuffle[:, 0, 0], torch.ones(3))
    assert torch.equal(shuffle.sum(1), torch.ones(3, 6)) and torch.equal(
        shuffle.sum(2), torch.ones(3, 6)
    )
    x = torch.randn(3, 6, 2, 2)
    torch.testing.assert_close(unshuffle_logits(shuffle_ids(x, shuffle), shuffle), x)


def test_absent_ids_get_a_very_low_logit() -> None:
    out = mask_absent_ids(torch.zeros(2, 4, 1, 1), [1, 3])
    assert out[0, 2:].eq(-1e10).all() and out[0, :2].eq(0).all() and out[1].eq(0).all()


def test_learning_rate_warm_up_poly_and_encoder_ratio() -> None:
    s = SCHEDULE
    assert s.base_lr(0) == s.lr_min
    assert s.base_lr(5000) == pytest.approx(s.lr)
    assert s.base_lr(2500) == pytest.approx((s.lr + s.lr_min) / 2)
    assert s.base_lr(s.total_steps) == pytest.approx(s.lr_min, rel=1e-3)
    assert s.encoder_lr(5000) == pytest.approx((s.lr - s.lr_min) * 0.1 + s.lr_min)


def test_aux_weight_top_k_and_sequential_switch() -> None:
    s = SCHEDULE
    assert s.aux_weight(0) == 1.0 and s.aux_weight(2 * s.total_steps) == 0.0
    assert s.topk_fraction(0) == 1.0 and s.topk_fraction(s.total_steps) == s.top_k_percent_pixels
    assert not s.sequential(49_999) and s.sequential(50_000)
    assert s.frozen_names(50_000) == ("patch_wise_id_bank",) and s.frozen_names(0) == ()


def test_schedule_from_upstream_names_and_refusals() -> None:
    s = TrainSchedule.from_upstream({"TRAIN_LR": 4e-4, "TRAIN_SEQ_TRAINING_FREEZE_PARAMS": []})
    assert s.lr == 4e-4 and s.seq_training_freeze == () and s.lr_min == SCHEDULE.lr_min
    with pytest.raises(ConfigError):
        TrainSchedule.from_upstream({"TRAIN_WEIGHT_DECAY_EXCLUSIVE": {"x": 0.1}})
    with pytest.raises(ConfigError, match="TRAIN_ENABLE_PREV_FRAME"):
        TrainSchedule.from_upstream({"TRAIN_ENABLE_PREV_FRAME": True, "MODEL_USE_PREV_PROB": False})
    with pytest.raises(ConfigError):
        TrainSchedule(top_k_percent_pixels=1.0)


def test_weight_decay_and_lr_kind_rules() -> None:
    assert weight_decay_for("LSTT.layers.0.norm1.weight", 1, SCHEDULE) == 0.0
    assert weight_decay_for("decoder.conv_out.weight", 4, SCHEDULE) == 0.0
    assert (
        weight_decay_for("LSTT.layers.0.short_term_attn.relative_emb_k.weight", 4, SCHEDULE) == 0.07
    )
    assert lr_kind("encoder.layers.1.blocks.0.attn.qkv.weight") == "encoder"
    assert lr_kind("encoder_projector.weight") == "other"


def test_frozen_encoder_parts_follow_upstream_stage_rule() -> None:
    assert frozen_encoder_prefixes(-1) == ((), None)
    assert frozen_encoder_prefixes(1) == (("encoder.patch_embed.",), None)
    prefixes, kept = frozen_encoder_prefixes(3)
    assert prefixes == ("encoder.patch_embed.", "encoder.layers.0.", "encoder.layers.1.")
    assert kept == "encoder.layers.1.downsample."


def test_sequential_learning_rates_freeze_the_id_bank() -> None:
    net = build_aot("tiny")
    freeze_encoder_stages(net, 2)
    optimizer = build_optimizer(net, SCHEDULE)
    set_learning_rates(optimizer, SCHEDULE, 60_000)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["patch_wise_id_bank.weight"]["lr"] == 0.0
    assert groups["patch_wise_id_bank.weight"]["weight_decay"] == 0.0
    assert groups["encoder.norm0.weight"]["lr"] == SCHEDULE.encoder_lr(60_000)
    assert "encoder.layers.0.blocks.0.norm1.weight" not in groups
    assert "encoder.layers.0.downsample.norm.weight" in groups


def _clip(frames: int = 5, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(frames, batch, 3, 32, 48, generator=generator)
    labels = torch.randint(0, 3, (frames, batch, 32, 48), generator=generator)
    return images, labels


@pytest.mark.parametrize("build", [build_aot, build_deaot])
@pytest.mark.parametrize("sequential", [False, True])
def test_training_forward_memory_and_gradients(
    build: Callable[[str], PropagationNet], sequential: bool
) -> None:
    net = build("tiny").train()
    settings = StepSettings(
        aux_weight=0.5, topk_fraction=0.3, sequential=sequential, long_term_gap=2
    )
    shuffle = random_id_shuffle(2, net.config.num_ids, torch.Generator().manual_seed(2))
    images, labels = _clip()
    out = TrainingForward(net, [2, 2], shuffle, settings)(images, labels)
    assert [(w.after_frame, w.long_term_after) for w in out.memory_log] == [
        (0, 1),
        (1, 1),
        (2, 2),
        (3, 2),
    ]
    assert all(w.from_prediction == sequential for w in out.memory_log[1:])
    torch.testing.assert_close(out.loss, 0.5 * out.aux_loss + out.pred_loss)
    out.loss.backward()
    assert (net.patch_wise_id_bank.weight.grad is None) == sequential
    assert net.decoder.conv_out.weight.grad is not None


def test_zero_aux_weight_scores_the_reference_without_gradient() -> None:
    net = build_aot("tiny").train()
    settings = StepSettings(aux_weight=0.0, topk_fraction=1.0, sequential=False, long_term_gap=2)
    shuffle = random_id_shuffle(2, net.config.num_ids)
    images, labels = _clip(frames=3)
    out = TrainingForward(net, [2, 2], shuffle, settings)(images, labels)
    assert not out.frames[0].logits.requires_grad and out.frames[1].logits.requires_grad


def test_random_masks_are_identity_unless_training_with_a_rate() -> None:
    x = torch.randn(3, 2, 4)
    drop = DropPath(batch_dim=1)
    assert drop.train()(x) is x
    drop.rate = 0.5
    assert drop.eval()(x) is x
    drop.train().draw = lambda shape, keep, like: torch.tensor([1.0, 0.0])
    torch.testing.assert_close(drop(x), torch.stack([x[:, 0] * 2, x[:, 1] * 0], dim=1))
    channels = ChannelDropout().train()
    channels.rate = 0.5
    channels.draw = lambda shape, keep, like: torch.tensor([[1.0, 0.0]])
    y = torch.ones(1, 2, 3, 3)
    torch.testing.assert_close(channels(y)[0, :, 0, 0], torch.tensor([2.0, 0.0]))


def test_dropout_rates_follow_upstream_spread_and_frozen_stages() -> None:
    first, second = swin_block_rates((2, 2), 0.3)
    assert first == pytest.approx([0.0, 0.1]) and second == pytest.approx([0.2, 0.3])
    net = build_deaot("tiny")
    rates = set_dropout_rates(net, DropoutRates(swin_drop_path=0.3, freeze_at=2))
    assert not any(name.startswith("encoder.layers.0.") for name in rates)
    assert rates["encoder.layers.1.blocks.0.drop_path"] == pytest.approx(0.3 * 2 / 7)
    assert rates["LSTT.layers.0.self_attn.dw_conv.dropout"] == pytest.approx(0.1)
    assert rates["LSTT.layers.1.droppath"] == pytest.approx(0.1)


def test_forced_predictions_replace_the_fed_back_masks_in_sequential_training() -> None:
    net = build_aot("tiny").train()
    settings = StepSettings(aux_weight=1.0, topk_fraction=1.0, sequential=True, long_term_gap=2)
    forward = TrainingForward(net, [2, 2], random_id_shuffle(2, net.config.num_ids), settings)
    images, labels = _clip(frames=4)
    free = forward(images, labels)
    own = torch.stack([f.pred_mask for f in free.frames])
    torch.testing.assert_close(forward(images, labels, forced_predictions=own).loss, free.loss)
    assert forward(images, labels, forced_predictions=labels).loss != free.loss
