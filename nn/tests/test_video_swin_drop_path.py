"""Video-Swin's stochastic depth: upstream's per-block rates, inactive in eval, per sample and
unbiased in training."""

from __future__ import annotations

import pytest
import torch

from rvos_nn.layers.video_swin import VideoSwinConfig, build_video_swin


def _tiny(rate: float):
    config = VideoSwinConfig(
        embed_dim=8, depths=(2, 2), num_heads=(1, 2), window_size=(2, 4, 4), drop_path_rate=rate
    )
    return build_video_swin(config)


def test_rates_rise_linearly_over_the_blocks() -> None:
    rates = [block.drop_path for layer in _tiny(0.3).layers for block in layer.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 4).tolist())


def test_eval_ignores_it_and_training_draws_per_sample() -> None:
    torch.manual_seed(0)
    model = _tiny(0.5).eval()
    frames = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        plain = _tiny(0.0).eval()
        plain.load_state_dict(model.state_dict())
        assert all(
            torch.equal(a, b) for a, b in zip(model(frames, 2), plain(frames, 2), strict=True)
        )
        model.train()
        torch.manual_seed(1)
        first = model(frames, 2)
        torch.manual_seed(1)
        again = model(frames, 2)
        torch.manual_seed(2)
        other = model(frames, 2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_kept_residuals_are_rescaled() -> None:
    block = _tiny(1.0).layers[1].blocks[1]  # the last block: rate 1.0 -> keep 0
    block.drop_path = 0.25
    block.train()
    residual = torch.ones(20000, 1, 1, 1, 1)
    dropped = block._dropped(residual)
    assert set(dropped.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    assert abs(dropped.mean().item() - 1.0) < 0.03
