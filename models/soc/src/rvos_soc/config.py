"""SOC configuration: frozen dataclasses, named variants, upstream hyperparameter names.

Upstream reads ``soc_test/configs/refer_youtube_vos.yaml`` (plus the inference script's command
line) into one namespace; the model's values live at its top level and in the two nested dicts
``DeformTransformer`` and ``VITA``. ``SOCConfig.from_upstream`` takes that namespace as a mapping
(as stored in the parity fixture's config.json: ``build.model_config``); ``transformer`` and
``vita`` below hold the two dicts' values under their upstream keys. The public release
(RobertLuo1/NeurIPS2023_SOC, ``configs/refer_youtube_vos.yaml``) names two of them differently:
``VOC`` for ``VITA`` and ``vl_loss`` for ``text_refer_loss``; both spellings are accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rvos_core.errors import ConfigError
from rvos_nn.layers import VIDEO_SWIN_CONFIGS, VideoSwinConfig
from rvos_nn.text import TEXT_ENCODERS, TextEncoderConfig

# SOC's backbone names (``config.backbone``) -> the shared Video-Swin configurations.
BACKBONES: dict[str, VideoSwinConfig] = {
    "video-swin-t": VIDEO_SWIN_CONFIGS["video_swin_t_p4w7"],
    "video-swin-s": VIDEO_SWIN_CONFIGS["video_swin_s_p4w7"],
    "video-swin-b": VIDEO_SWIN_CONFIGS["video_swin_b_p4w7"],
}
# Upstream values that only matter for training or for the process, not for inference arithmetic:
# accepted by from_upstream and not stored.
TRAINING_ONLY = frozenset(
    {
        "backbone_pretrained",
        "backbone_pretrained_path",
        "train_backbone",
        "use_checkpoint",
        "freeze_text_encoder",
        "text_encoder_type",
        "aux_loss",
        "dataset_name",
        "device",
    }
)
# Upstream values whose other settings select code the competition model does not use.
FIXED = {"with_box_refine": True, "text_refer_loss": True}
# Per nested section: values with one supported setting, and training-only values.
SECTION_FIXED = {"DeformTransformer": {"two_stage": False}}
SECTION_TRAINING_ONLY = {"VITA": frozenset({"num_frames"})}
# Fields of SOCConfig that from_upstream builds from their own sections.
NESTED = frozenset({"backbone", "text", "transformer", "vita"})
# The public release's names -> the competition copy's.
PUBLIC_NAMES = {"VOC": "VITA", "vl_loss": "text_refer_loss"}


@dataclass(frozen=True)
class DeformTransformerConfig:
    """Upstream ``DeformTransformer``: the deformable encoder/decoder (``two_stage`` False)."""

    d_model: int = 256
    nheads: int = 8
    enc_layers: int = 3
    dec_layers: int = 3
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_queries: int = 20
    num_feature_levels: int = 4
    dec_n_points: int = 4
    enc_n_points: int = 4


@dataclass(frozen=True)
class VitaConfig:
    """Upstream ``VITA``: the temporal query module (``vita.``; ``voc.`` in the public release).

    ``dropout`` is hard-coded (0.1) upstream and acts in training only; ``num_frames`` (a training
    clip length) is accepted by from_upstream and not stored.
    """

    input_dim: int = 256
    window_size: int = 0
    num_frame_queries: int = 20
    num_queries: int = 20
    nheads: int = 8
    dim_feedforward: int = 2048
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.1


@dataclass(frozen=True)
class SOCConfig:
    """Field names are upstream's where one exists.

    Attributes:
        backbone: the Video-Swin backbone (upstream ``backbone: video-swin-b``).
        text: the RoBERTa text encoder (its hidden size is ``txt_proj``'s input width).
        transformer, vita: upstream ``DeformTransformer`` and ``VITA``.
        fusion_heads: heads of ``vlf`` / ``lvf`` (hard-coded 8 upstream).
        eval_short_size, eval_max_size: DETR ``RandomResize([short], max_size)`` of the frames
            (the competition inference uses 360 / 640).
    """

    backbone: VideoSwinConfig = field(default_factory=VideoSwinConfig)
    text: TextEncoderConfig = TEXT_ENCODERS["roberta-base"]
    transformer: DeformTransformerConfig = field(default_factory=DeformTransformerConfig)
    vita: VitaConfig = field(default_factory=VitaConfig)
    num_classes: int = 1
    mask_kernels_dim: int = 8
    controller_layers: int = 3
    dynamic_mask_channels: int = 8
    rel_coord: bool = True
    fusion_heads: int = 8
    eval_short_size: int = 360
    eval_max_size: int = 640

    def __post_init__(self) -> None:
        t, v = self.transformer, self.vita
        if t.num_feature_levels != len(self.backbone.depths):
            raise ConfigError(
                f"DeformTransformer.num_feature_levels {t.num_feature_levels} must equal the "
                f"backbone's stage count {len(self.backbone.depths)} (stages 2..n plus one extra)"
            )
        if t.d_model % 128 != 0:
            raise ConfigError(
                f"DeformTransformer.d_model {t.d_model} must be a multiple of 128 (the spatial "
                "decoder's GroupNorm(8) on d_model / 16 channels)"
            )
        if v.input_dim != t.d_model:
            raise ConfigError(f"VITA.input_dim {v.input_dim} must equal d_model {t.d_model}")
        if v.num_frame_queries != t.num_queries or v.num_queries != t.num_queries:
            raise ConfigError(
                f"VITA.num_frame_queries {v.num_frame_queries} and VITA.num_queries "
                f"{v.num_queries} must equal DeformTransformer.num_queries {t.num_queries} (the "
                "video queries are added to the per-frame decoder states)"
            )

    def replace(self, **changes: Any) -> SOCConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_upstream(
        cls,
        model_config: Mapping[str, Any],
        *,
        video_swin: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None,
    ) -> SOCConfig:
        """From upstream's configuration namespace (yaml names), as stored in a parity fixture.

        Args:
            model_config: the values ``build(config)`` reads (top level + ``DeformTransformer`` +
                ``VITA``); missing ones keep the competition values.
            video_swin: the backbone's constructor values (default: the named ``backbone``).
            text: transformers-named RoBERTa settings on top of roberta-base.
        """
        values = _competition_names(model_config)
        backbone = _backbone(values.pop("backbone", "video-swin-b"), video_swin)
        encoder = TextEncoderConfig.from_mapping(
            TEXT_ENCODERS["roberta-base"],
            {k: v for k, v in (text or {}).items() if not k.startswith("attn_implementation")},
        )
        transformer = _section(
            DeformTransformerConfig, "DeformTransformer", values.pop("DeformTransformer", {})
        )
        vita = _section(VitaConfig, "VITA", values.pop("VITA", {}))
        _check_fixed(values, FIXED)
        names = {f.name for f in dataclasses.fields(cls)} - NESTED
        unknown = sorted(set(values) - names - TRAINING_ONLY)
        if unknown:
            raise ConfigError(f"unknown SOC option(s): {', '.join(unknown)}")
        kept = {k: v for k, v in values.items() if k in names}
        return cls(backbone=backbone, text=encoder, transformer=transformer, vita=vita, **kept)


def _competition_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the public release's names replaced by the competition copy's."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = PUBLIC_NAMES.get(key, key)
        if name in out:
            raise ConfigError(f"upstream option {name} is given twice (also as {key})")
        out[name] = value
    return out


def _backbone(name: str, values: Mapping[str, Any] | None) -> VideoSwinConfig:
    if values is not None:
        return VideoSwinConfig.from_upstream(values)
    if name not in BACKBONES:
        raise ConfigError(f"backbone {name!r} is not supported; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _check_fixed(values: dict[str, Any], fixed: Mapping[str, Any], where: str = "") -> None:
    for key, wanted in fixed.items():
        if key in values and values.pop(key) != wanted:
            raise ConfigError(f"upstream option {where}{key} is only supported as {wanted!r}")


def _section(cls: type[Any], name: str, section: Mapping[str, Any]) -> Any:
    """The dataclass ``cls`` from upstream's nested dict ``name``."""
    values = dict(section)
    _check_fixed(values, SECTION_FIXED.get(name, {}), f"{name}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - SECTION_TRAINING_ONLY.get(name, frozenset()))
    if unknown:
        raise ConfigError(f"unknown {name} option(s): {', '.join(unknown)}")
    return cls(**{k: v for k, v in values.items() if k in names})


FULL = SOCConfig()
TINY = SOCConfig(
    backbone=VideoSwinConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
    text=TEXT_ENCODERS["tiny-roberta"],
    transformer=DeformTransformerConfig(
        d_model=128, enc_layers=1, dec_layers=2, dim_feedforward=128, num_queries=4
    ),
    vita=VitaConfig(
        input_dim=128,
        num_frame_queries=4,
        num_queries=4,
        dim_feedforward=128,
        enc_layers=1,
        dec_layers=2,
    ),
    eval_short_size=64,
    eval_max_size=112,
)
VARIANTS: dict[str, SOCConfig] = {"full": FULL, "tiny": TINY}
