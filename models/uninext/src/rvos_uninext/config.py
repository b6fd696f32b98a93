"""Configurations of UNINEXT's RVOS model: the two released variants and a tiny one for tests.

Upstream names: ``UninextConfig.from_upstream`` accepts the detectron2 config keys of UNINEXT
(``MODEL.DDETRS.*``, ``MODEL.LANGUAGE_BACKBONE.*``, ``INPUT.*``) in the layout of
shared/parity/uninext/model/*/config.json, and refuses switches this re-implementation does not
implement (everything the ``video_joint_*_eval_rvos`` configs do not use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rvos_core.errors import ConfigError
from rvos_nn.text import BERT_BASE_UNCASED, TextEncoderConfig
from rvos_uninext.convnext import ConvNeXtConfig
from rvos_uninext.vit import ViTConfig

BackboneKind = Literal["vit", "convnext"]

# detectron2 key -> UninextConfig field (values as the eval-RVOS configs resolve them).
_UPSTREAM_FIELDS = {
    "MODEL.DDETRS.HIDDEN_DIM": "hidden_dim",
    "MODEL.DDETRS.NHEADS": "nheads",
    "MODEL.DDETRS.DIM_FEEDFORWARD": "dim_feedforward",
    "MODEL.DDETRS.ENC_LAYERS": "enc_layers",
    "MODEL.DDETRS.DEC_LAYERS": "dec_layers",
    "MODEL.DDETRS.NUM_FEATURE_LEVELS": "num_feature_levels",
    "MODEL.DDETRS.ENC_N_POINTS": "enc_n_points",
    "MODEL.DDETRS.DEC_N_POINTS": "dec_n_points",
    "MODEL.DDETRS.TWO_STAGE_NUM_PROPOSALS": "num_proposals",
    "MODEL.DDETRS.VL_HIDDEN_DIM": "vl_hidden_dim",
    "MODEL.DDETRS.NUM_VL_LAYERS": "num_vl_layers",
    "MODEL.DDETRS.CTRL_LAYERS": "ctrl_layers",
    "MODEL.DDETRS.MASK_STRIDE": "mask_stride",
    "MODEL.LANGUAGE_BACKBONE.LANG_DIM": "lang_dim",
    "MODEL.LANGUAGE_BACKBONE.MAX_QUERY_LEN": "max_query_len",
    "N_LAYER_DEFORMABLE_REID": "reid_layers",
    "MODEL.DDETRS.DN_NUMBER": "dn_number",
    "MODEL.DDETRS.BOX_NOISE_SCALE": "box_noise_scale",
    "INPUT.MIN_SIZE_TEST": "min_size_test",
    "INPUT.MAX_SIZE_TEST": "max_size_test",
}
# Switches the RVOS path depends on; any other value is refused.
_UPSTREAM_FIXED: dict[str, Any] = {
    "MODEL.DDETRS.USE_DINO": True,
    "MODEL.DDETRS.TWO_STAGE": True,
    "MODEL.DDETRS.MIXED_SELECTION": True,
    "MODEL.DDETRS.LOOK_FORWARD_TWICE": True,
    "MODEL.DDETRS.USE_REL_COORD": True,
    "MODEL.DDETRS.NEW_MASK_HEAD": False,
    "MODEL.DDETRS.USE_RAFT": False,
    "MODEL.USE_IOU_BRANCH": True,
    "MODEL.DECOUPLE_TGT": True,
    "MODEL.STILL_TGT_FOR_BOTH": True,
    "MODEL.STILL_CLS_FOR_ENCODER": True,
    "MODEL.USE_EARLY_FUSION": True,
    "MODEL.CLS_POOL_TYPE": "average",
    "MODEL.LANGUAGE_BACKBONE.MODEL_TYPE": "bert-base-uncased",
    "MODEL.LANGUAGE_BACKBONE.PAD_MAX": True,
    "MODEL.DYHEAD.FUSE_CONFIG.CLAMP_MIN_FOR_UNDERFLOW": True,
    "MODEL.DYHEAD.FUSE_CONFIG.CLAMP_MAX_FOR_OVERFLOW": True,
    "MODEL.DYHEAD.FUSE_CONFIG.STABLE_SOFTMAX_2D": False,
    "MODEL.DYHEAD.FUSE_CONFIG.CLAMP_DOT_PRODUCT": True,
    "USE_DEFORMABLE_REID_HEAD": True,
    "INPUT.FORMAT": "RGB",
}
UNINEXT_BERT = BERT_BASE_UNCASED.replace(add_pooling_layer=False)


@dataclass(frozen=True)
class UninextConfig:
    """UNINEXT ``video_joint`` RVOS model (defaults: the released ViT-H / ConvNeXt-L settings).

    ``num_proposals`` is the number of decoder queries (upstream ``TWO_STAGE_NUM_PROPOSALS``);
    ``mask_stride`` the output stride of the mask logits; ``reid_layers`` the decoder layers of
    the (output-neutral) deformable reid head; ``dn_number`` / ``box_noise_scale`` the training's
    denoising queries (DINO's contrastive denoising, rvos_uninext.training).
    """

    backbone: ViTConfig | ConvNeXtConfig
    text: TextEncoderConfig = UNINEXT_BERT
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    enc_layers: int = 6
    dec_layers: int = 6
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    num_proposals: int = 900
    vl_hidden_dim: int = 2048
    num_vl_layers: int = 1
    ctrl_layers: int = 3
    mask_stride: int = 4
    lang_dim: int = 768
    max_query_len: int = 256
    reid_layers: int = 2
    min_size_test: int = 480
    max_size_test: int = 1333
    dn_number: int = 100
    box_noise_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.dec_layers < 2:
            raise ConfigError(
                "UNINEXT needs at least 2 decoder layers (masks use the second-last references)"
            )
        if self.num_feature_levels != 4:
            raise ConfigError(
                "UNINEXT's mask head reads 3 backbone levels + 1 extra: num_feature_levels must be 4"
            )
        if self.hidden_dim != 256:
            raise ConfigError(
                "hidden_dim must be 256 (DINO's 512-wide box sine embedding feeds ref_point_head)"
            )
        if not 0 <= self.num_vl_layers <= self.enc_layers:
            raise ConfigError(
                f"num_vl_layers {self.num_vl_layers} must be between 0 and enc_layers {self.enc_layers}"
            )
        if self.text.hidden_size != self.lang_dim:
            raise ConfigError(
                f"text encoder width {self.text.hidden_size} differs from lang_dim {self.lang_dim}"
            )

    @property
    def backbone_kind(self) -> BackboneKind:
        return "vit" if isinstance(self.backbone, ViTConfig) else "convnext"

    def replace(self, **changes: Any) -> UninextConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def vit_huge(cls) -> UninextConfig:
        """``video_joint_vit_huge_eval_rvos``."""
        return cls(backbone=ViTConfig.huge())

    @classmethod
    def convnext_large(cls) -> UninextConfig:
        """``video_joint_convnext_large_eval_rvos``."""
        return cls(backbone=ConvNeXtConfig.large())

    @classmethod
    def tiny(cls, backbone: BackboneKind) -> UninextConfig:
        """The parity fixture's sizes (hidden 256 and BERT width 768 cannot shrink)."""
        trunk = ViTConfig.tiny() if backbone == "vit" else ConvNeXtConfig.tiny()
        text = UNINEXT_BERT.replace(
            vocab_size=256, num_hidden_layers=1, intermediate_size=64, max_position_embeddings=64
        )
        return cls(
            backbone=trunk,
            text=text,
            dim_feedforward=128,
            enc_layers=2,
            dec_layers=2,
            num_proposals=20,
            vl_hidden_dim=64,
            max_query_len=16,
            min_size_test=160,
        )

    @classmethod
    def from_upstream(cls, spec: Mapping[str, Any]) -> UninextConfig:
        """From a parity ``config.json``: ``backbone_kind``, ``tiny_backbone`` (ViT/ConvNeXt
        constructor arguments), ``bert_config`` (transformers names) and the resolved detectron2
        values in ``cfg_dump`` (nested) and ``cfg_overrides`` (dotted)."""
        flat = _flatten(spec.get("cfg_dump", {}))
        flat.update(spec.get("cfg_overrides", {}))
        for key, wanted in _UPSTREAM_FIXED.items():
            if key in flat and flat[key] != wanted:
                raise ConfigError(
                    f"upstream setting {key}={flat[key]!r} is not supported ({wanted!r} only)"
                )
        values: dict[str, Any] = {f: flat[k] for k, f in _UPSTREAM_FIELDS.items() if k in flat}
        kind = spec.get("backbone_kind", "vit")
        trunk_args = spec.get("tiny_backbone", {})
        if kind == "vit":
            values["backbone"] = (
                ViTConfig.from_upstream(trunk_args) if trunk_args else ViTConfig.huge()
            )
        elif kind == "convnext":
            values["backbone"] = (
                ConvNeXtConfig.from_upstream(trunk_args) if trunk_args else ConvNeXtConfig.large()
            )
        else:
            raise ConfigError(f"unknown backbone_kind {kind!r} (vit or convnext)")
        if "bert_config" in spec:
            values["text"] = TextEncoderConfig.from_mapping(UNINEXT_BERT, spec["bert_config"])
        return cls(**values)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"MODEL": {"DDETRS": {"NHEADS": 8}}} -> {"MODEL.DDETRS.NHEADS": 8}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
