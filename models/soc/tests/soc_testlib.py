"""Helpers of the SOC tests: a seeded tiny model, its tokenizer, synthetic frames, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_nn import testing
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip
from rvos_soc import SOC, TINY, build

TEXTS = ("a person riding a skateboard on the left", "the black dog", "a duck swimming in the lake")


def tiny_model(seed: int = 0) -> SOC:
    """The tiny variant with PyTorch's seeded default initialisation, in eval mode."""
    torch.manual_seed(seed)
    return build(TINY).eval()


def tiny_tokenizer(root: Path) -> Tokenizer:
    """A tiny tokenizer in roberta-base's layout under ``root``, loaded as the model loads it."""
    return testing.tiny_tokenizer(root, TINY.text.max_tokens)


def video_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    """``count`` RGB frames of ``size`` (height, width): a moving bright disc on a noisy ramp."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(count):
        ramp = np.stack([xx / w, yy / h, np.full((h, w), t / max(count, 1))], -1)
        cx, cy = w * (0.3 + 0.4 * t / max(count, 1)), h / 2
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (min(h, w) / 4) ** 2)[..., None]
        pixels = 0.6 * ramp + 0.3 * disc + 0.1 * rng.random((h, w, 3))
        out.append(Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)))
    return out


def competition_file(path: Path, state: dict[str, torch.Tensor], max_positions: int) -> Path:
    """A checkpoint as upstream's jointtrainer.py saves it (legacy text position_ids included)."""
    weights = dict(state)
    weights["text_encoder.embeddings.position_ids"] = torch.arange(max_positions)[None]
    torch.save(
        {
            "epoch": 3,
            "total_epochs": 10,
            "model_state_dict": weights,
            "optimizer_state_dict": {"state": {}, "param_groups": []},
            "scheduler_state_dict": {"last_epoch": 3},
            "grad_scaler_state_dict": {},
            "best_loss": 0.5,
        },
        path,
    )
    return path


def training_clips(sizes: list[tuple[int, int]], length: int = 3, seed: int = 0) -> list[Clip]:
    """rvos_nn.testing.training_clips with this model's TEXTS."""
    return testing.training_clips(sizes, TEXTS, length, seed)
