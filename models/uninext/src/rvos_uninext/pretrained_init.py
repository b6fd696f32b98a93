"""UNINEXT's initialisation from public pretrained weights (``init.source = "pretrained"``), as
upstream's first stage starts: the visual backbone from the file upstream downloads, the text
encoder from Hugging Face's bert-base-uncased; every other module keeps upstream's constructor
initialisation (``rvos_uninext.training.init_like_upstream``).

Upstream: RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
``UNINEXT/assets/DATA.md`` (the files), ``UNINEXT/conversion/convert_convnext.py`` (ConvNeXt:
layer-scale ``gamma``, norm and downsampling-norm tensors become ``<key>.weight`` of shape [1, C],
detectron2's ``nn.Embedding`` trick), ``projects/UNINEXT/convert_pth2pkl.py`` (then detectron2's
suffix-matching loader, ``matching_heuristics``), ``projects/UNINEXT/configs/obj365v2_32g_*.yaml``
(``MODEL.WEIGHTS``) and ``uninext/backbone/`` (``D2ViT``, ``D2ConvNeXt``), and
``MODEL.LANGUAGE_BACKBONE.MODEL_TYPE: bert-base-uncased`` (``BertModel.from_pretrained``).

Files under PRETRAINED (paths.env), named as upstream downloads them:
- ``mae_pretrain_vit_huge_p14to16.pth`` (ViT-H, detectron2's MAE file, ``{"model": ...}``);
- ``convnext_large_22k_1k_384.pth`` (ConvNeXt-L, the official ImageNet-22k/1k file);
- ``bert-base-uncased/``: ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``)
  beside the ``vocab.txt`` the tokenizer reads.

Loading is strict (rvos_nn.checkpoint): every stored key is used or dropped by a named rule, every
backbone and text-encoder key is filled except the ones named below, which keep their
initialisation as they do upstream (detectron2's loader only warns about them). Known
differences: detectron2 matches keys by suffix and skips shape mismatches with a warning; here
the names are mapped explicitly and a mismatch is an error with the report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from rvos_core.errors import ConfigError
from rvos_nn.checkpoint import (
    LEGACY_TEXT_BUFFERS,
    CheckpointReport,
    CheckpointRules,
    KeyRule,
    extract_state_dict,
    load_state_dict_strict,
    read_checkpoint,
)
from rvos_nn.pretrained_init import (
    ROBERTA_CONFIG_FIELDS,
    ROBERTA_WEIGHTS,
    PretrainedReport,
    TextEncoderFolder,
    load_text_encoder,
)

BACKBONE_MODULE = "detr.detr.backbone.0.backbone"
TEXT_MODULE = "text_encoder.body.model"
BACKBONE_FILES = {
    "vit": "mae_pretrain_vit_huge_p14to16.pth",
    "convnext": "convnext_large_22k_1k_384.pth",
}
BERT_FOLDER = "bert-base-uncased"
BERT_WEIGHTS = ROBERTA_WEIGHTS
BERT_CONFIG_FIELDS = tuple(name for name in ROBERTA_CONFIG_FIELDS if name != "pad_token_id")
"""config.json values that must equal the model's text encoder's (RoBERTa's but the pad id)."""

VIT_RULES = CheckpointRules(
    ignore=(
        KeyRule("class-token", r"cls_token", "MAE's class token; ViTDet keeps only its position"),
        KeyRule("final-norm", r"(fc_)?norm\.(weight|bias)", "MAE's last norm; ViTDet has none"),
    ),
    allow_missing=(
        KeyRule(
            "relative-positions",
            r"blocks\.\d+\.attn\.rel_pos_[hw]",
            "ViTDet's relative position tables: MAE has none, they start at zero",
        ),
        KeyRule("feature-pyramid", r"fpn\d\..+", "ViTDet's simple feature pyramid, random"),
    ),
    containers=("model",),
)
CONVNEXT_RULES = CheckpointRules(
    ignore=(
        KeyRule("classifier", r"head\..+", "the ImageNet classifier"),
        KeyRule("final-norm", r"norm\.(weight|bias)\.weight", "the classifier's norm"),
    ),
    allow_missing=(
        KeyRule("output-norms", r"norm\d\.(weight|bias)\.weight", "the per-level output norms"),
    ),
    containers=("model",),
)
CONVNEXT_WRAPPED = ("gamma", "norm", "downsample_layers.0.1.", "downsample_layers.1.0.")
"""convert_convnext.py's keys that become ``<key>.weight`` [1, C] (with the other downsampling
norms ``downsample_layers.{2,3}.0``)."""
BERT_RULES = CheckpointRules(
    renames=(
        (r"bert\.", ""),
        (r"(.*)LayerNorm\.gamma$", r"\1LayerNorm.weight"),
        (r"(.*)LayerNorm\.beta$", r"\1LayerNorm.bias"),
    ),
    ignore=(
        LEGACY_TEXT_BUFFERS,
        KeyRule("pretraining-heads", r"cls\..+", "BERT's masked-LM and next-sentence heads"),
        KeyRule("pooler", r"pooler\..+", "UNINEXT's BERT has no pooler (add_pooling_layer=False)"),
    ),
    containers=(),
)
BERT = TextEncoderFolder("BERT", "bert", BERT_WEIGHTS, BERT_CONFIG_FIELDS, BERT_RULES)


def init_from_pretrained(model: nn.Module, pretrained: Path) -> PretrainedReport:
    """Load upstream's backbone file and bert-base-uncased into a UNINEXT ``model``."""
    body = model.get_submodule(BACKBONE_MODULE)
    kind = "vit" if hasattr(body, "blocks") else "convnext"
    path = Path(pretrained) / BACKBONE_FILES[kind]
    state = _backbone_state(path)
    converted = convert_convnext(state) if kind == "convnext" else []
    rules = VIT_RULES if kind == "vit" else CONVNEXT_RULES
    backbone = load_state_dict_strict(body, state, rules, source=str(path))
    backbone.container = "model"
    text = load_bert(model.get_submodule(TEXT_MODULE), Path(pretrained) / BERT_FOLDER)
    return PretrainedReport(backbone=backbone, text=text, converted=converted)


def _backbone_state(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(
            f"{path}: the backbone checkpoint is missing (PRETRAINED in paths.env; upstream's "
            f"files: {', '.join(BACKBONE_FILES.values())})"
        )
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise ConfigError(f"{path}: not a backbone checkpoint (expected a dict with 'model')")
    return extract_state_dict(checkpoint, path, ("model",))[1]


def convert_convnext(state: dict[str, Tensor]) -> list[str]:
    """convert_convnext.py in place: each wrapped tensor [C] -> ``<key>.weight`` [1, C]."""
    wrapped = [k for k in state if _wrapped(k)]
    for key in wrapped:
        state[f"{key}.weight"] = state.pop(key).unsqueeze(0)
    return (
        [f"{len(wrapped)} layer-scale / norm tensors [C] -> <key>.weight [1, C]"] if wrapped else []
    )


def _wrapped(key: str) -> bool:
    return any(part in key for part in CONVNEXT_WRAPPED) or key.startswith(
        ("downsample_layers.2.0.", "downsample_layers.3.0.")
    )


def load_bert(encoder: nn.Module, folder: Path) -> CheckpointReport:
    """Load a Hugging Face bert-base-uncased folder into ``encoder`` (a BertModel without pooler);
    its config.json must describe ``encoder``'s architecture."""
    return load_text_encoder(encoder, folder, BERT)


# ---------------------------------------------------------------------------------------------
# Files in upstream's layout, for tests


def write_backbone_file(body: nn.Module, path: Path) -> Path:
    """``body``'s weights as upstream's download holds them (the inverse of the conversion), with
    the keys the rules drop (class token, final norm, classifier) and without the ones they allow
    to be missing."""
    vit = hasattr(body, "blocks")
    rules = VIT_RULES if vit else CONVNEXT_RULES
    state = {k: v.clone() for k, v in body.state_dict().items() if not _allowed_missing(k, rules)}
    if vit:
        width = state["pos_embed"].shape[-1]
        extra = {"cls_token": torch.zeros(1, 1, width), "norm.weight": torch.ones(width)}
    else:
        state = {_unwrap(k): v.squeeze(0) if _unwrap(k) != k else v for k, v in state.items()}
        width = state["downsample_layers.3.1.bias"].shape[0]
        extra = {"norm.weight": torch.ones(width), "head.weight": torch.zeros(3, width)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state | extra}, path)
    return path


def _allowed_missing(key: str, rules: CheckpointRules) -> bool:
    return any(re.fullmatch(rule.pattern, key) for rule in rules.allow_missing)


def _unwrap(key: str) -> str:
    bare = key.removesuffix(".weight")
    return bare if key.endswith(".weight") and _wrapped(bare) else key


def write_bert_folder(encoder: nn.Module, folder: Path) -> Path:
    """``encoder`` as Hugging Face's bert-base-uncased folder holds it: config.json, the weights
    under ``bert.`` with legacy ``LayerNorm.gamma/beta`` names, a pooler and the pretraining
    heads."""
    folder.mkdir(parents=True, exist_ok=True)
    config = encoder.config.to_dict() | {"model_type": "bert"}
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))
    hidden = encoder.config.hidden_size
    state = {f"bert.{_legacy_norm(k)}": v.clone() for k, v in encoder.state_dict().items()}
    state |= {
        "bert.pooler.dense.weight": torch.zeros(hidden, hidden),
        "cls.predictions.bias": torch.zeros(encoder.config.vocab_size),
    }
    torch.save(state, folder / BERT_WEIGHTS[1])
    return folder


def _legacy_norm(key: str) -> str:
    return key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
        "LayerNorm.bias", "LayerNorm.beta"
    )
