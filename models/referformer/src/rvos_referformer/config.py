"""ReferFormer configuration: frozen dataclass, named variants, upstream argument names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rvos_core.layers import VideoSwinConfig
from rvos_core.text import TEXT_ENCODERS
from rvos_core.upstream_opts import LanguageQueryConfig


@dataclass(frozen=True)
class ReferFormerConfig(LanguageQueryConfig):
    """ReferFormer's values are exactly the shared ones (``rvos_core.upstream_opts``: upstream
    ``opts.py`` names, checks, ``from_upstream``); MUTR adds its own to the same base."""

    MODEL: ClassVar[str] = "ReferFormer"


FULL = ReferFormerConfig()
TINY = ReferFormerConfig(
    backbone=VideoSwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
    text=TEXT_ENCODERS["tiny-roberta"],
    hidden_dim=64,
    enc_layers=1,
    dec_layers=2,
    dim_feedforward=128,
    num_queries=3,
    mask_dim=16,
    resize_short=64,
)
VARIANTS: dict[str, ReferFormerConfig] = {"full": FULL, "tiny": TINY}
