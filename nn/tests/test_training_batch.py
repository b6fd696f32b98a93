"""The shared pieces of the Video-Swin models' training forward (rvos_nn.training): padding a batch
of clips as upstream's collate functions do, the padding mask through ``encode_video``,
concatenating per-clip outputs, ReferFormer's and MUTR's parameter groups, and the temporal
module's training-mode windows."""

from __future__ import annotations

import pytest
import torch

from rvos_nn.language_query import TINY_VALUES, LanguageQueryConfig
from rvos_nn.layers import TemporalQueryModule
from rvos_nn.layers.video_text import LanguageQueryModel
from rvos_nn.training import (
    Clip,
    concat_clips,
    language_query_param_group,
    pad_clips,
)


def _clip(h: int, w: int, t: int = 2) -> Clip:
    return Clip(
        frames=torch.randn(t, 3, h, w),
        masks=torch.zeros(t, h, w, dtype=torch.bool),
        boxes=torch.zeros(t, 4),
        valid=torch.ones(t, dtype=torch.int32),
        caption="a duck",
        frame_ids=torch.arange(t),
        orig_size=(h, w),
        source="test",
    )


@pytest.mark.parametrize(
    ("sizes", "divisor", "padded"),
    [
        ([(96, 160), (90, 148)], 32, (96, 160)),  # the train fixtures' case_b2
        ([(84, 150)], 32, (96, 160)),  # train_referformer case_b1
        ([(84, 150)], 1, (84, 150)),  # train_soc case_b1: no padding
        ([(50, 70), (64, 33)], 1, (64, 70)),
    ],
)
def test_pad_clips_as_upstream(
    sizes: list[tuple[int, int]], divisor: int, padded: tuple[int, int]
) -> None:
    clips = [_clip(h, w) for h, w in sizes]
    frames, mask = pad_clips(clips, divisor)
    assert frames.shape == (len(clips), 2, 3, *padded)
    assert mask.shape == (len(clips), 2, *padded)
    for b, clip in enumerate(clips):
        h, w = clip.size
        assert torch.equal(frames[b, :, :, :h, :w], clip.frames)
        assert not mask[b, :, :h, :w].any()
        assert mask[b].sum() == 2 * (padded[0] * padded[1] - h * w)
        assert frames[b][mask[b][:, None].expand_as(frames[b])].abs().sum() == 0


def test_a_batch_needs_one_clip_length() -> None:
    with pytest.raises(ValueError, match="clips of one length"):
        pad_clips([_clip(32, 32, t=2), _clip(32, 32, t=3)])


def test_concat_clips_along_each_batch_axis_keeping_shared_tensors() -> None:
    def clip_layers(seed: int) -> list[dict[str, torch.Tensor]]:
        torch.manual_seed(seed)
        shared = torch.randn(1, 4)
        return [{"masks": torch.randn(3, 1, 2), "feature": shared} for _ in range(2)]

    first, second = clip_layers(0), clip_layers(1)
    layers = concat_clips([first, second], {"masks": 1})
    assert layers[0]["masks"].shape == (3, 2, 2)
    torch.testing.assert_close(layers[1]["masks"][:, 1:], second[1]["masks"])
    assert layers[0]["feature"].shape == (2, 4)
    assert layers[0]["feature"] is layers[1]["feature"]


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("backbone.0.body.layers.2.blocks.0.attn.qkv.weight", "backbone"),
        ("text_encoder.encoder.layer.0.attention.self.query.weight", "text_encoder"),
        ("text_encoder.pooler.dense.bias", "text_encoder"),
        ("transformer.reference_points.weight", "linear_proj"),
        ("transformer.decoder.layers.1.cross_attn.sampling_offsets.bias", "linear_proj"),
        ("transformer.encoder.layers.0.self_attn.attention_weights.weight", "rest"),
        ("input_proj.0.0.weight", "rest"),
        ("resizer.fc.weight", "rest"),
    ],
)
def test_language_query_groups_by_upstream_keywords(name: str, group: str) -> None:
    assert language_query_param_group(name) == group


# ---------------------------------------------------------------------------------------------
# The padding mask through encode_video


@pytest.fixture(scope="module")
def model() -> LanguageQueryModel:
    torch.manual_seed(0)
    return LanguageQueryModel(config=LanguageQueryConfig(**TINY_VALUES), combine="multiply").eval()


def test_no_mask_is_an_unpadded_video(model: LanguageQueryModel) -> None:
    frames = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        default = model.encode_video(frames)
        explicit = model.encode_video(frames, torch.zeros(2, 64, 96, dtype=torch.bool))
    for a, b in zip(
        [*default.projected, *default.level_pos, *default.stage_pos],
        [*explicit.projected, *explicit.level_pos, *explicit.stage_pos],
        strict=True,
    ):
        assert torch.equal(a, b)
    assert not any(m.any() for m in [*default.level_masks, *default.stage_masks])


def test_the_mask_reaches_every_level(model: LanguageQueryModel) -> None:
    """A 64 x 64 clip padded on the right to 64 x 128: every stage and level masks exactly its
    right half, and the sine positions of the left half are the unpadded clip's (they are
    normalised by the valid extent; the features themselves differ, as upstream's: the backbone
    and the projections' GroupNorm see the zero padding)."""
    frames = torch.randn(2, 3, 64, 64)
    padded = torch.nn.functional.pad(frames, (0, 64))
    mask = torch.zeros(2, 64, 128, dtype=torch.bool)
    mask[..., 64:] = True
    with torch.no_grad():
        alone, batch = model.encode_video(frames), model.encode_video(padded, mask)
    pairs = [
        (alone.stage_masks, alone.stage_pos, batch.stage_masks, batch.stage_pos),
        (alone.level_masks, alone.level_pos, batch.level_masks, batch.level_pos),
    ]
    for alone_masks, alone_pos, masks, poses in pairs:
        for own, own_pos, level_mask, pos in zip(alone_masks, alone_pos, masks, poses, strict=True):
            w = own.shape[-1]
            assert level_mask.shape[-1] == 2 * w
            assert level_mask[..., w:].all() and not level_mask[..., :w].any()
            torch.testing.assert_close(pos[..., :w], own_pos)


# ---------------------------------------------------------------------------------------------
# The temporal module in training mode (MUTR's mti: upstream never shifts windows in training)


def test_training_mode_keeps_windows_unshifted() -> None:
    torch.manual_seed(0)
    module = TemporalQueryModule(
        d_model=16,
        num_frame_queries=2,
        num_queries=3,
        nheads=2,
        dim_feedforward=8,
        enc_layers=2,
        dec_layers=1,
        window_size=4,
        learned_query_feat=True,
    )
    x = torch.randn(8, 2, 1, 16)
    changed = x.clone()
    changed[5] += 1.0
    with torch.no_grad():
        trained = module.train().encode(x), module.encode(changed)
        evaluated = module.eval().encode(x), module.encode(changed)
    # training: both layers attend inside frames 0-3 / 4-7, so frame 5 never reaches frames 0-3
    assert torch.equal(trained[0][:4], trained[1][:4])
    # eval: the second (shifted) layer mixes the two halves
    assert not torch.allclose(evaluated[0][:4], evaluated[1][:4])
