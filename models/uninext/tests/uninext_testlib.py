"""Helpers of the UNINEXT tests: seeded tiny models, a tiny BERT tokenizer, synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_nn import testing
from rvos_nn.text import UNINEXT_BERT_TOKENIZER
from rvos_uninext.entry import CONVNEXT, VITH
from rvos_uninext.model import Uninext

BUILDERS = {"vit": VITH.build, "convnext": CONVNEXT.build}


def tiny_model(kind: str = "vit", seed: int = 0) -> Uninext:
    """The tiny variant with every parameter redrawn from a seed (no zero-initialised head), eval."""
    torch.manual_seed(seed)
    model = BUILDERS[kind]("tiny")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower() or "gamma" in name):
                p.copy_(1.0 + 0.1 * torch.rand(p.shape, generator=generator))
                continue
            bound = (3.0 / max(p.shape[-1], 1)) ** 0.5 if p.dim() > 1 else 0.1
            p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=generator))
    return model.eval()


def pretrained_folder(root: Path) -> Path:
    """A PRETRAINED folder holding a tiny WordPiece vocabulary in bert-base-uncased's layout."""
    return testing.pretrained_folder(root, UNINEXT_BERT_TOKENIZER)


def frames(count: int = 3, size: tuple[int, int] = (40, 60), seed: int = 0) -> list[Image.Image]:
    """RGB frames of (height, width): a colour ramp with a bright disc moving right, plus noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(count):
        ramp = np.stack([xx / w, yy / h, 0.5 + 0.0 * xx], axis=-1)
        disc = ((xx - (w // 4 + 3 * t)) ** 2 + (yy - h // 2) ** 2) < (min(h, w) // 4) ** 2
        image = 0.7 * ramp + 0.3 * disc[..., None] + 0.1 * rng.random((h, w, 3))
        out.append(Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)))
    return out
