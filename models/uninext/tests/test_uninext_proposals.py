"""Encoder proposals (two-stage selection) on hand-made masks, independently of the fixtures."""

from __future__ import annotations

import torch

from rvos_uninext.transformer import DinoVLTransformer, Levels, proposal_boxes

SHAPES = [(3, 4), (2, 2)]


def _padding() -> torch.Tensor:
    """[2, 16] over SHAPES: image 0 unpadded; image 1 keeps 2 x 3 of level 0 and 1 x 2 of level 1."""
    level0 = torch.zeros(2, 3, 4, dtype=torch.bool)
    level0[1, 2:, :] = True
    level0[1, :, 3:] = True
    level1 = torch.zeros(2, 2, 2, dtype=torch.bool)
    level1[1, 1:, :] = True
    return torch.cat([level0.flatten(1), level1.flatten(1)], 1)


def _tiny_transformer() -> DinoVLTransformer:
    torch.manual_seed(0)
    return DinoVLTransformer(
        d_model=32,
        nhead=4,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dim_feedforward=16,
        num_feature_levels=len(SHAPES),
        enc_n_points=1,
        dec_n_points=1,
        num_proposals=2,
        lang_dim=16,
        vl_hidden_dim=16,
        num_vl_layers=1,
    ).eval()


def test_centres_are_cell_centres_over_the_valid_extent_and_sizes_double_per_level():
    boxes = proposal_boxes(_padding(), SHAPES)
    assert boxes.shape == (2, 16, 4)
    valid_sizes = [[(3, 4), (2, 2)], [(2, 3), (1, 2)]]  # (valid h, valid w) per level
    for image, valid in enumerate(valid_sizes):
        expected = []
        for level, ((h, w), (valid_h, valid_w)) in enumerate(zip(SHAPES, valid, strict=True)):
            side = 0.05 * 2**level
            expected += [
                [(j + 0.5) / valid_w, (i + 0.5) / valid_h, side, side]
                for i in range(h)
                for j in range(w)
            ]
        torch.testing.assert_close(boxes[image], torch.tensor(expected), rtol=0, atol=1e-7)


def test_padding_and_border_boxes_get_inf_logits_and_zero_memory():
    model = _tiny_transformer()
    shapes = [*SHAPES, (1, 60)]  # 60 columns: the first and last centres leave (0.01, 0.99)
    padding = torch.cat([_padding(), torch.zeros(2, 60, dtype=torch.bool)], 1)
    memory = torch.randn(2, padding.shape[1], 32)
    levels = Levels(memory, memory, padding, shapes, torch.ones(2, len(shapes), 2))
    with torch.no_grad():
        projected, logits = model.encoder_proposals(memory, levels)
        blank = model.enc_output_norm(model.enc_output(torch.zeros(32)))
    boxes = proposal_boxes(padding, shapes)
    border = torch.zeros_like(padding)
    ends = [16, 16 + 59]  # first and last cell of the 1 x 60 level
    border[:, ends] = True
    rejected = padding | border
    torch.testing.assert_close(boxes[:, ends, 0], torch.tensor([[0.5, 59.5]] * 2) / 60)
    assert torch.isinf(logits[rejected]).all() and (logits[rejected] > 0).all()
    assert torch.isfinite(logits[~rejected]).all()
    kept = boxes[~rejected]
    torch.testing.assert_close(logits[~rejected], torch.log(kept / (1 - kept)), rtol=0, atol=0)
    torch.testing.assert_close(logits[~rejected].sigmoid(), kept)
    torch.testing.assert_close(projected[rejected], blank.expand(int(rejected.sum()), -1))
    assert not torch.allclose(projected[~rejected], blank.expand(int((~rejected).sum()), -1))
