"""Upstream ``opts.py`` arguments of the ReferFormer-family models (ReferFormer, MUTR).

``ReferFormer/opts.py`` and ``MUTR/opts.py`` (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d) define
the same model arguments with the same defaults. A parity fixture stores the values ``build(args)``
read (``config.json`` -> ``build.model_args``), the backbone's constructor values and the RoBERTa
settings; ``config_values`` turns them into the constructor values of a model config dataclass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from rvos_core.errors import ConfigError
from rvos_nn.layers import VIDEO_SWIN_CONFIGS, VideoSwinConfig
from rvos_nn.text import TEXT_ENCODERS, TextEncoderConfig

RESIZER_OVERRIDE = "FeatureResizer.input_feat_size"

# Options that only matter for training or for the process, not for the inference arithmetic:
# accepted and not stored.
TRAINING_ONLY = frozenset(
    {
        "backbone_pretrained",
        "use_checkpoint",
        "num_frames",
        "aux_loss",
        "freeze_text_encoder",
        "device",
    }
)
# Options whose other values select code paths the competition models do not use.
FIXED = {
    "two_stage": False,
    "with_box_refine": True,
    "masks": True,
    "position_embedding": "sine",
    "threshold": 0.5,
}
# ``num_classes`` of upstream ``build`` when ``binary`` is False.
DATASET_CLASSES = {"ytvos": 65, "davis": 78, "a2d": 1, "jhmdb": 1}


@dataclass(frozen=True)
class LanguageQueryConfig:
    """What ReferFormer and MUTR configure alike; field names are upstream's (``opts.py``).

    Model configs subclass it (adding their own fields) and name themselves in ``MODEL``;
    ``CONSTRUCTOR_OVERRIDES`` maps the upstream constructor values a fixture may change (besides
    ``FeatureResizer.input_feat_size``, which must equal the text width) to their fields.

    Attributes:
        backbone: the Video-Swin backbone (upstream ``--backbone video_swin_b_p4w7``).
        text: the RoBERTa text encoder (its hidden size is the resizer's input width; upstream
            hard-codes 768).
        num_classes: 1 for the binary (RVOS) checkpoints.
        fusion_heads: heads of the early vision-language fusion (hard-coded 8 upstream).
        resize_short: short side of the frames fed to the model (torchvision ``Resize(int)``).
    """

    MODEL: ClassVar[str] = "ReferFormer"
    CONSTRUCTOR_OVERRIDES: ClassVar[Mapping[str, str]] = {}

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

    @property
    def d_model(self) -> int:
        """The transformer width (``hidden_dim``; the name rvos_nn.layers' builders read)."""
        return self.hidden_dim

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_upstream(
        cls,
        model_args: Mapping[str, Any],
        *,
        video_swin: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Self:
        """From upstream's ``args`` (``opts.py`` names), as stored in a parity fixture.

        Args:
            model_args: the argparse values ``build(args)`` reads.
            video_swin: the backbone's constructor values (default: ``configs[args.backbone]``).
            text: transformers-named RoBERTa settings on top of roberta-base.
            overrides: upstream constructor changes: ``FeatureResizer.input_feat_size`` (must
                equal the text width) and the keys of ``CONSTRUCTOR_OVERRIDES``.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        values = config_values(
            model_args, fields=names, model=cls.MODEL, video_swin=video_swin, text=text
        )
        for key, value in (overrides or {}).items():
            if key == RESIZER_OVERRIDE:
                check_resizer_width(key, value, values["text"])
            elif key in cls.CONSTRUCTOR_OVERRIDES:
                values[cls.CONSTRUCTOR_OVERRIDES[key]] = value
            else:
                raise ConfigError(f"unknown upstream constructor override {key!r}")
        return cls(**values)


def config_values(
    model_args: Mapping[str, Any],
    *,
    fields: Collection[str],
    model: str,
    video_swin: Mapping[str, Any] | None = None,
    text: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Constructor values of a config with the given field names from upstream's ``args``.

    Returns ``backbone`` (VideoSwinConfig), ``text`` (TextEncoderConfig on top of roberta-base),
    ``num_classes`` and every other argument named like a field. An unknown argument, or a value
    of FIXED other than the supported one, is a ConfigError naming ``model``.
    """
    values = dict(model_args)
    backbone = _backbone(values.pop("backbone", "video_swin_b_p4w7"), video_swin)
    encoder = TextEncoderConfig.from_mapping(
        TEXT_ENCODERS["roberta-base"], _text_values(text or {})
    )
    num_classes = _num_classes(values.pop("binary", True), values.pop("dataset_file", "ytvos"))
    for key, wanted in FIXED.items():
        if key in values and values.pop(key) != wanted:
            raise ConfigError(
                f"upstream option {key}={model_args[key]!r} is not supported (only {wanted!r})"
            )
    unknown = sorted(set(values) - set(fields) - TRAINING_ONLY)
    if unknown:
        raise ConfigError(f"unknown {model} option(s): {', '.join(unknown)}")
    kept = {k: v for k, v in values.items() if k in fields}
    return {"backbone": backbone, "text": encoder, "num_classes": num_classes, **kept}


def check_resizer_width(key: str, value: int, text: TextEncoderConfig) -> None:
    """``FeatureResizer.input_feat_size`` (hard-coded 768 upstream) must be the text width."""
    if value != text.hidden_size:
        raise ConfigError(f"{key}={value} differs from the text width {text.hidden_size}")


def _backbone(name: str, values: Mapping[str, Any] | None) -> VideoSwinConfig:
    if values is not None:
        return VideoSwinConfig.from_upstream(values)
    if name not in VIDEO_SWIN_CONFIGS:
        raise ConfigError(
            f"backbone {name!r} is not supported; known: {', '.join(VIDEO_SWIN_CONFIGS)}"
        )
    return VIDEO_SWIN_CONFIGS[name]


def _text_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """transformers config values without the entries that describe the runtime only."""
    return {k: v for k, v in values.items() if not k.startswith("attn_implementation")}


def _num_classes(binary: bool, dataset_file: str) -> int:
    if binary:
        return 1
    return DATASET_CLASSES.get(dataset_file, 91)


# The small ReferFormer-family network of the tests and quick benchmarks (``tiny`` variants):
# every module present, a few channels each.
TINY_VALUES: Mapping[str, Any] = {
    "backbone": VideoSwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
    "text": TEXT_ENCODERS["tiny-roberta"],
    "hidden_dim": 64,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim_feedforward": 128,
    "num_queries": 3,
    "mask_dim": 16,
    "resize_short": 64,
}
