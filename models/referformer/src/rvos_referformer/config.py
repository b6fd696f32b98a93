"""ReferFormer configuration: frozen dataclass, named variants, upstream argument names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rvos_core.errors import ConfigError
from rvos_core.layers import VideoSwinConfig
from rvos_core.text import TEXT_ENCODERS, TextEncoderConfig
from rvos_core.upstream_opts import check_resizer_width, config_values


@dataclass(frozen=True)
class ReferFormerConfig:
    """Field names are upstream's (``opts.py``) where one exists.

    Attributes:
        backbone: the Video-Swin backbone (upstream ``--backbone video_swin_b_p4w7``).
        text: the RoBERTa text encoder (its hidden size is the resizer's input width; upstream
            hard-codes 768).
        num_classes: 1 for the binary (RVOS) checkpoints.
        fusion_heads: heads of the early vision-language fusion (hard-coded 8 upstream).
        resize_short: short side of the frames fed to the model (torchvision ``Resize(int)``).
    """

    backbone: VideoSwinConfig = field(default_factory=VideoSwinConfig)
    text: TextEncoderConfig = TEXT_ENCODERS["roberta-base"]
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 4
    dec_layers: int = 4
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_feature_levels: int = 4
    dec_n_points: int = 4
    enc_n_points: int = 4
    num_queries: int = 5
    num_classes: int = 1
    mask_dim: int = 256
    controller_layers: int = 3
    dynamic_mask_channels: int = 8
    rel_coord: bool = True
    fusion_heads: int = 8
    resize_short: int = 360

    def __post_init__(self) -> None:
        if self.num_feature_levels != len(self.backbone.depths):
            raise ConfigError(
                f"num_feature_levels {self.num_feature_levels} must equal the backbone's stage "
                f"count {len(self.backbone.depths)} (stages 2..n plus one extra stride-2 level)"
            )
        if self.dec_layers < 2:
            raise ConfigError(
                "dec_layers must be at least 2 (the reference points of the last layer's input)"
            )
        if self.hidden_dim % 32 != 0:
            raise ConfigError(
                f"hidden_dim {self.hidden_dim} must be a multiple of 32 (GroupNorm(32))"
            )

    def replace(self, **changes: Any) -> ReferFormerConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_upstream(
        cls,
        model_args: Mapping[str, Any],
        *,
        video_swin: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ReferFormerConfig:
        """From upstream's ``args`` (``opts.py`` names), as stored in a parity fixture.

        Args:
            model_args: the argparse values ``build(args)`` reads.
            video_swin: the backbone's constructor values (default: ``configs[args.backbone]``).
            text: transformers-named RoBERTa settings on top of roberta-base.
            overrides: upstream constructor changes; only ``FeatureResizer.input_feat_size`` is
                known, and it must equal the text width (ours is taken from the encoder).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = config_values(
            model_args, fields=names, model="ReferFormer", video_swin=video_swin, text=text
        )
        for key, value in (overrides or {}).items():
            if key != "FeatureResizer.input_feat_size":
                raise ConfigError(f"unknown upstream constructor override {key!r}")
            check_resizer_width(key, value, values["text"])
        return cls(**values)


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
