"""Initialisation of the Video-Swin RVOS models (ReferFormer, MUTR, SOC) from public pretrained
weights, as upstream starts a training without an RVOS checkpoint: the visual backbone from a Video
Swin Transformer Kinetics checkpoint, the text encoder from Hugging Face's roberta-base.

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d): ``VideoSwinTransformerBackbone.__init__``
in ``ReferFormer/models/video_swin_transformer.py`` (MUTR's and ``soc_test``'s copies do the same)
reads ``torch.load(path)['state_dict']``, keeps the ``backbone.*`` entries without that prefix,
sums the patch embedding's weight over its time axis (the Kinetics models embed 2-frame patches,
[C, 3, 2, 4, 4]; the RVOS models 1-frame ones, [C, 3, 1, 4, 4]) and loads the result strictly into
``SwinTransformer3D``; the wrapper then moves the patch mergings from ``layers.i.downsample`` to
``downsamples.i`` and never uses the final ``norm``; the classification head (``cls_head.*``) is
never read. The text encoder is ``RobertaModel.from_pretrained(<roberta folder>)``: roberta-base's
file holds the encoder under ``roberta.`` and a masked-LM head (``lm_head.*``, unused) but no
pooler, which transformers initialises at random (normal, std ``initializer_range``, bias 0), as
the model's own ``build`` already has.

Files under PRETRAINED (paths.env), named as upstream's:
- ``swin_base_patch244_window877_kinetics600_22k.pth`` (Video-Swin-B),
  ``swin_small_patch244_window877_kinetics400_1k.pth`` (-S),
  ``swin_tiny_patch244_window877_kinetics400_1k.pth`` (-T);
- ``roberta-base/``: ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``), beside
  the tokenizer files the models already read there.

``init_like_upstream`` gives the other modules upstream's own initialisation (its model
constructors'): the focal-loss prior on the class heads, zero box deltas, Xavier input projections
and controller, the pixel decoder's c2-Xavier / Xavier fills, the spatial decoder's Kaiming convs and
the temporal module's Xavier layers (the deformable transformer has its own from its constructor).
A training from scratch runs ``init_like_upstream`` and then ``init_from_pretrained``.

Both files load through rvos_nn.checkpoint, strictly: every stored key is used or dropped by a named rule,
every key of the backbone and of the text encoder is filled (the pooler by a named allow-missing
rule when the file has none). A missing file, or one that is not such a checkpoint, is a
ConfigError naming it; a checkpoint of another architecture is a CheckpointMismatch with the report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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

BACKBONE_MODULE = "backbone.0.body"
TEXT_MODULE = "text_encoder"

KINETICS_FILES: dict[tuple[int, tuple[int, ...]], str] = {
    (128, (2, 2, 18, 2)): "swin_base_patch244_window877_kinetics600_22k.pth",
    (96, (2, 2, 18, 2)): "swin_small_patch244_window877_kinetics400_1k.pth",
    (96, (2, 2, 6, 2)): "swin_tiny_patch244_window877_kinetics400_1k.pth",
}
"""Upstream's Kinetics file per Video-Swin (embed_dim, depths)."""
KINETICS_CONTAINER = "state_dict"
KINETICS_PREFIX = "backbone."
PATCH_EMBED_WEIGHT = "backbone.patch_embed.proj.weight"
KINETICS_RULES = CheckpointRules(
    renames=(
        (r"backbone\.layers\.(\d+)\.downsample\.", r"downsamples.\1."),
        (r"backbone\.", ""),
    ),
    ignore=(
        KeyRule(
            "final-norm",
            r"norm\.(weight|bias)",
            "Video-Swin's last LayerNorm: the per-frame wrapper returns the stages before it",
        ),
        KeyRule(
            "classification-head",
            r"cls_head\..+",
            "the Kinetics action classifier; upstream keeps only backbone.* keys",
        ),
    ),
    containers=(KINETICS_CONTAINER,),
)

ROBERTA_FOLDER = "roberta-base"
ROBERTA_CONFIG = "config.json"
ROBERTA_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""Weight files of a Hugging Face folder, in the order they are looked for."""
ROBERTA_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "pad_token_id",
)
"""config.json values that must equal the model's text encoder's."""
ROBERTA_RULES = CheckpointRules(
    renames=((r"roberta\.", ""),),
    ignore=(
        LEGACY_TEXT_BUFFERS,
        KeyRule(
            "masked-lm-head",
            r"lm_head\..+",
            "roberta-base's masked-LM head; RobertaModel.from_pretrained drops it",
        ),
    ),
    allow_missing=(
        KeyRule(
            "pooler",
            r"pooler\.dense\.(weight|bias)",
            "roberta-base has no pooler; upstream's from_pretrained initialises it at random, "
            "as the model's build does",
        ),
    ),
    containers=(),
)


@dataclass
class PretrainedReport:
    """What ``init_from_pretrained`` loaded: one strict-loading report per file, plus the
    tensors converted on the way (the patch embedding's temporal sum)."""

    backbone: CheckpointReport
    text: CheckpointReport
    converted: list[str] = field(default_factory=list)

    def format(self) -> str:
        converted = [f"  converted {entry}" for entry in self.converted]
        return "\n".join([self.backbone.format(), *converted, self.text.format()])


def init_from_pretrained(
    model: nn.Module, pretrained: Path, *, backbone_file: str | Path | None = None
) -> PretrainedReport:
    """Load the Kinetics backbone into ``model.backbone[0].body`` and roberta-base into
    ``model.text_encoder``; every other module keeps its initialisation.

    Args:
        model: a ReferFormer, MUTR or SOC module (``backbone.0.body.*``, ``text_encoder.*``).
        pretrained: the PRETRAINED folder (paths.env).
        backbone_file: the Kinetics checkpoint, relative to ``pretrained`` or absolute (default:
            upstream's file for the model's Video-Swin, see KINETICS_FILES).
    """
    body = model.get_submodule(BACKBONE_MODULE)
    path = Path(pretrained) / (backbone_file or kinetics_file(body))
    backbone, converted = load_kinetics_backbone(body, path)
    text = load_roberta(model.get_submodule(TEXT_MODULE), Path(pretrained) / ROBERTA_FOLDER)
    return PretrainedReport(backbone=backbone, text=text, converted=converted)


def kinetics_file(body: nn.Module) -> str:
    """Upstream's Kinetics file name for a Video-Swin backbone (by embed_dim and depths)."""
    key = (int(body.num_channels[0]), tuple(len(layer.blocks) for layer in body.layers))
    if key not in KINETICS_FILES:
        raise ConfigError(
            f"no Kinetics checkpoint is known for a Video-Swin with embed_dim {key[0]} and depths "
            f"{list(key[1])}; name the file (backbone_file)"
        )
    return KINETICS_FILES[key]


# ---------------------------------------------------------------------------------------------
# Upstream's initialisation of the other modules

PRIOR_PROBABILITY = 0.01
"""The class heads' bias is the logit of this prior (upstream's focal-loss initialisation)."""
KAIMING_CONVS = re.compile(
    r"pixel_decoder\.(adapter_\d+|layer_\d+|mask_features)|spatial_decoder\.(lay|adapter)\d+"
    r"|spatial_decoder\.out_lay"
)
"""Convolutions upstream fills with Kaiming-uniform (a = 1) weights and zero biases
(detectron2's ``c2_xavier_fill`` in ReferFormer/MUTR, the same fill in SOC's spatial decoder)."""
XAVIER_BLOCKS = re.compile(
    r"pixel_decoder\.cross_attn_\d+|(mti|vita)\.(transformer_(self|cross)_attention_layers"
    r"|transformer_ffn_layers|enc_self_attn|enc_ffn)\.\d+"
)
"""Blocks whose matrices (every parameter of 2 or more dimensions) upstream Xavier-fills."""


def init_like_upstream(model: nn.Module) -> list[str]:
    """Give a ReferFormer, MUTR or SOC module upstream's initialisation of its heads, projections,
    pixel or spatial decoder and temporal module (see the module docstring); returns the names of
    the modules it filled."""
    filled = [*_init_heads(model), *_init_projections(model)]
    for name, module in model.named_modules():
        if KAIMING_CONVS.fullmatch(name):
            nn.init.kaiming_uniform_(module.weight, a=1)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
            filled.append(name)
        elif XAVIER_BLOCKS.fullmatch(name):
            for param in module.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
            filled.append(name)
    return filled


def _init_heads(model: nn.Module) -> list[str]:
    """Class biases at the prior's logit; the box heads' last layer zero, and the first head's
    width/height biases at -2 (upstream sets it before cloning for box refinement: head 0 only)."""
    prior_logit = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
    for head in model.class_embed:
        nn.init.constant_(head.bias, prior_logit)
    for head in model.bbox_embed:
        nn.init.zeros_(head.layers[-1].weight)
        nn.init.zeros_(head.layers[-1].bias)
    with torch.no_grad():
        model.bbox_embed[0].layers[-1].bias[2:] = -2.0
    return ["class_embed", "bbox_embed"]


def _init_projections(model: nn.Module) -> list[str]:
    """Xavier (gain 1) input projections and controller layers, zero biases."""
    layers = [projection[0] for projection in model.input_proj] + list(model.controller.layers)
    for layer in layers:
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return ["input_proj", "controller"]


# ---------------------------------------------------------------------------------------------
# Video-Swin from Kinetics


def load_kinetics_backbone(body: nn.Module, path: Path) -> tuple[CheckpointReport, list[str]]:
    """Load a Video-Swin Kinetics checkpoint (upstream's conversion, see the module docstring)
    into ``body``. Returns the strict-loading report and the converted tensors."""
    state = _kinetics_state(path)
    converted = []
    weight = state.get(PATCH_EMBED_WEIGHT)
    if weight is not None and weight.dim() == 5:
        state[PATCH_EMBED_WEIGHT] = weight.sum(dim=2, keepdim=True)
        converted.append(
            f"{PATCH_EMBED_WEIGHT}: summed over its {weight.shape[2]} time steps "
            f"{list(weight.shape)} -> {list(state[PATCH_EMBED_WEIGHT].shape)}"
        )
    report = load_state_dict_strict(body, state, KINETICS_RULES, source=str(path))
    report.container = KINETICS_CONTAINER
    return report, converted


def _kinetics_state(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise ConfigError(
            f"{path}: the Video-Swin Kinetics checkpoint is missing (PRETRAINED in paths.env; "
            f"upstream's files: {', '.join(sorted(set(KINETICS_FILES.values())))})"
        )
    checkpoint = read_checkpoint(path)
    stored = checkpoint.get(KINETICS_CONTAINER) if isinstance(checkpoint, Mapping) else None
    if not isinstance(stored, Mapping) or not any(
        str(key).startswith(KINETICS_PREFIX) for key in stored
    ):
        raise ConfigError(
            f"{path}: not a Video-Swin Kinetics checkpoint (expected a dict whose "
            f"'{KINETICS_CONTAINER}' holds '{KINETICS_PREFIX}*' keys)"
        )
    return extract_state_dict(checkpoint, path, (KINETICS_CONTAINER,))[1]


def write_kinetics_checkpoint(body: nn.Module, path: Path, *, temporal_patch: int = 2) -> Path:
    """Write ``body``'s weights as a Kinetics checkpoint of upstream's layout would hold them (the
    inverse of the conversion): ``{"state_dict": ..., "meta": ...}`` with ``backbone.*`` keys, the
    patch embedding spread over ``temporal_patch`` time steps that sum to it, a final norm and a
    classifier. For tests and for checking the conversion."""
    state = {}
    for key, value in body.state_dict().items():
        if key.startswith("downsamples."):
            index, rest = key.removeprefix("downsamples.").split(".", 1)
            key = f"layers.{index}.downsample.{rest}"
        state[KINETICS_PREFIX + key] = value.clone()
    weight = state[PATCH_EMBED_WEIGHT]
    state[PATCH_EMBED_WEIGHT] = torch.cat([weight / temporal_patch] * temporal_patch, dim=2)
    width = body.num_channels[-1]
    state["backbone.norm.weight"] = torch.ones(width)
    state["backbone.norm.bias"] = torch.zeros(width)
    state["cls_head.fc_cls.weight"] = torch.zeros(4, width)
    state["cls_head.fc_cls.bias"] = torch.zeros(4)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({KINETICS_CONTAINER: state, "meta": {"epoch": 30}}, path)
    return path


# ---------------------------------------------------------------------------------------------
# RoBERTa from a Hugging Face folder


@dataclass(frozen=True)
class TextEncoderFolder:
    """What a Hugging Face text-encoder folder must hold for a model: its ``title`` (messages),
    ``model_type`` in config.json, the weight files looked for in order, the config.json
    ``fields`` that must equal the encoder's, and the loading rules."""

    title: str
    model_type: str
    weights: tuple[str, ...]
    fields: tuple[str, ...]
    rules: CheckpointRules


ROBERTA = TextEncoderFolder(
    "RoBERTa", "roberta", ROBERTA_WEIGHTS, ROBERTA_CONFIG_FIELDS, ROBERTA_RULES
)


def load_roberta(encoder: nn.Module, folder: Path) -> CheckpointReport:
    """Load a Hugging Face RoBERTa folder (``config.json`` + weights) into ``encoder`` (a
    transformers RobertaModel); its config must describe ``encoder``'s architecture."""
    return load_text_encoder(encoder, folder, ROBERTA)


def load_text_encoder(
    encoder: nn.Module, folder: Path, kind: TextEncoderFolder
) -> CheckpointReport:
    """Load a Hugging Face folder of ``kind`` (``config.json`` + weights) into ``encoder`` (a
    transformers model), strictly; the config must describe ``encoder``'s architecture."""
    _check_config(folder / ROBERTA_CONFIG, encoder, kind)
    path = next((folder / name for name in kind.weights if (folder / name).is_file()), None)
    if path is None:
        raise ConfigError(
            f"{folder}: the {kind.title} weights are missing (one of {', '.join(kind.weights)}; "
            f"PRETRAINED in paths.env)"
        )
    return load_state_dict_strict(encoder, _read_weights(path), kind.rules, source=str(path))


def _check_config(path: Path, encoder: nn.Module, kind: TextEncoderFolder) -> None:
    if not path.is_file():
        raise ConfigError(f"{path}: the {kind.title} config is missing (PRETRAINED in paths.env)")
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(values, dict) or values.get("model_type") != kind.model_type:
        raise ConfigError(
            f"{path}: not a {kind.title} config (model_type must be {kind.model_type!r})"
        )
    ours = encoder.config
    differences = [
        f"{name} {values.get(name)!r} (model: {getattr(ours, name)!r})"
        for name in kind.fields
        if values.get(name) != getattr(ours, name)
    ]
    if differences:
        raise ConfigError(
            f"{path}: describes another text encoder than the model's: {', '.join(differences)}"
        )


def _read_weights(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise ConfigError(f"{path}: not a readable safetensors file ({exc})") from None
    return extract_state_dict(read_checkpoint(path), path, ())[1]


def write_roberta_folder(encoder: nn.Module, folder: Path, *, safetensors: bool = True) -> Path:
    """Write ``encoder`` as a Hugging Face roberta-base folder would hold it: ``config.json``, the
    weights under ``roberta.`` without the pooler, plus a masked-LM head. For tests and for
    checking the conversion."""
    folder.mkdir(parents=True, exist_ok=True)
    config = encoder.config.to_dict() | {"model_type": "roberta"}
    (folder / ROBERTA_CONFIG).write_text(json.dumps(config, indent=2, default=str))
    hidden = encoder.config.hidden_size
    state = {
        f"roberta.{key}": value.clone().contiguous()
        for key, value in encoder.state_dict().items()
        if not key.startswith("pooler.")
    }
    state["lm_head.dense.weight"] = torch.zeros(hidden, hidden)
    state["lm_head.bias"] = torch.zeros(encoder.config.vocab_size)
    if safetensors:
        from safetensors.torch import save_file

        save_file(state, folder / ROBERTA_WEIGHTS[0])
    else:
        torch.save(state, folder / ROBERTA_WEIGHTS[1])
    return folder
