"""Upstream ``opts.py`` arguments of the ReferFormer-family models (ReferFormer, MUTR).

``ReferFormer/opts.py`` and ``MUTR/opts.py`` (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d) define
the same model arguments with the same defaults. A parity fixture stores the values ``build(args)``
read (``config.json`` -> ``build.model_args``), the backbone's constructor values and the RoBERTa
settings; ``config_values`` turns them into the constructor values of a model config dataclass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from rvos_core.errors import ConfigError
from rvos_core.layers import VIDEO_SWIN_CONFIGS, VideoSwinConfig
from rvos_core.text import TEXT_ENCODERS, TextEncoderConfig

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
