"""MUTR configuration: frozen dataclass, named variants, upstream argument names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rvos_core.errors import ConfigError
from rvos_core.layers import VideoSwinConfig
from rvos_core.text import TEXT_ENCODERS, TextEncoderConfig
from rvos_core.upstream_opts import check_resizer_width, config_values

RESIZER_OVERRIDE = "FeatureResizer.input_feat_size"
# Constructor values hard-coded in upstream's MUTR.__init__ (``MTALayer(...)``, ``MTI(...)``) that a
# fixture may change through the constructor -> our field.
CONSTRUCTOR_OVERRIDES = {
    "MTALayer.d_ffn": "mta_dim_feedforward",
    "MTALayer.nhead": "mta_heads",
    "MTI.dim_feedforward": "mti_dim_feedforward",
    "MTI.window_size": "mti_window_size",
    "MTI.enc_layers": "mti_enc_layers",
    "MTI.dec_layers": "mti_dec_layers",
    "MTI.nheads": "mti_nheads",
}


@dataclass(frozen=True)
class MUTRConfig:
    """Field names are upstream's (``opts.py``) where one exists; the ``mta_*`` and ``mti_*``
    fields are values upstream hard-codes in ``MUTR.__init__``.

    Attributes:
        backbone: the Video-Swin backbone (upstream ``--backbone video_swin_b_p4w7``).
        text: the RoBERTa text encoder (its hidden size is the resizer's input width; upstream
            hard-codes 768).
        num_classes: 1 for the binary (RVOS) checkpoints.
        fusion_heads: heads of the early vision-language fusion (hard-coded 8 upstream).
        mta_layers, mta_heads, mta_dim_feedforward: the multi-scale temporal aggregation layer
            stack (upstream ``MTA(MTALayer(d_model, nhead=8, d_ffn=2048), 1)``).
        mti_*: the temporal query module ``mti`` (upstream ``MTI(window_size=4, nheads=8,
            dim_feedforward=2048, enc_layers=3, dec_layers=3)``, dropout 0.2).
        resize_short: default short side of the frames fed to the model (torchvision
            ``Resize(int)``); a run sets its own with the predictor option ``short_side``.
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
    mta_layers: int = 1
    mta_heads: int = 8
    mta_dim_feedforward: int = 2048
    mti_window_size: int = 4
    mti_nheads: int = 8
    mti_dim_feedforward: int = 2048
    mti_enc_layers: int = 3
    mti_dec_layers: int = 3
    mti_dropout: float = 0.2
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
        if self.mti_window_size < 0:
            raise ConfigError(f"mti_window_size must be >= 0, got {self.mti_window_size}")
        if self.mta_layers < 1 or self.mti_dec_layers < 1:
            raise ConfigError("mta_layers and mti_dec_layers must be at least 1")

    def replace(self, **changes: Any) -> MUTRConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_upstream(
        cls,
        model_args: Mapping[str, Any],
        *,
        video_swin: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> MUTRConfig:
        """From upstream's ``args`` (``opts.py`` names), as stored in a parity fixture.

        Args:
            model_args: the argparse values ``build(args)`` reads.
            video_swin: the backbone's constructor values (default: ``configs[args.backbone]``).
            text: transformers-named RoBERTa settings on top of roberta-base.
            overrides: upstream constructor changes: ``FeatureResizer.input_feat_size`` (must
                equal the text width) and the keys of CONSTRUCTOR_OVERRIDES.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = config_values(
            model_args, fields=names, model="MUTR", video_swin=video_swin, text=text
        )
        for key, value in (overrides or {}).items():
            if key == RESIZER_OVERRIDE:
                check_resizer_width(key, value, values["text"])
            elif key in CONSTRUCTOR_OVERRIDES:
                values[CONSTRUCTOR_OVERRIDES[key]] = value
            else:
                raise ConfigError(f"unknown upstream constructor override {key!r}")
        return cls(**values)


FULL = MUTRConfig()
TINY = MUTRConfig(
    backbone=VideoSwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
    text=TEXT_ENCODERS["tiny-roberta"],
    hidden_dim=64,
    enc_layers=1,
    dec_layers=2,
    dim_feedforward=128,
    num_queries=3,
    mask_dim=16,
    mta_dim_feedforward=128,
    mti_dim_feedforward=128,
    mti_dec_layers=2,
    resize_short=64,
)
VARIANTS: dict[str, MUTRConfig] = {"full": FULL, "tiny": TINY}
