"""SAM 2.1, the SAM 3 tracker and EdgeTAM as propagators: the library's video models, three
small configurations of one skeleton (``rvos_vos.tracking`` runs them, ``rvos_vos.propagate``
registers them under ``rvos.propagators`` beside AOT and DeAOT).

Each family is a transformers video model (``Sam2VideoModel``, ``Sam3TrackerVideoModel``,
``EdgeTamVideoModel``, transformers 5.23) with its inference session class. Weights come from a
folder in the Hugging Face layout (``config.json`` + ``model.safetensors``), loaded with
``from_pretrained(local_files_only=True)`` and checked strictly (no missing or mis-shaped key).

The library's processors (``Sam2VideoProcessor`` ...) need torchvision, which this project does not
install, so ``frame_pixels`` and ``mask_input`` do their two steps: the frame resized (bilinear,
antialiased) to the model's square input, /255, the family's mean / std; the key mask resized the
same way and thresholded at 0.5 (``process_new_mask_for_video_frame``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import (
    EdgeTamVideoConfig,
    EdgeTamVideoInferenceSession,
    EdgeTamVideoModel,
    PretrainedConfig,
    PreTrainedModel,
    Sam2HieraDetConfig,
    Sam2VideoConfig,
    Sam2VideoInferenceSession,
    Sam2VideoModel,
    Sam2VisionConfig,
    Sam3TrackerVideoConfig,
    Sam3TrackerVideoInferenceSession,
    Sam3TrackerVideoModel,
    Sam3VisionConfig,
    Sam3ViTConfig,
)
from transformers.utils import logging as hf_logging

from rvos_core.errors import ConfigError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class TrackerFamily:
    """One library video tracker used as a propagator.

    Attributes:
        name: the registered name ('sam2', 'sam3_tracker', 'edgetam').
        title: how messages name it.
        model_class / session_class: the library's model and inference session.
        model_types: the ``model_type`` values of a config.json this family loads.
        folder: the default weights folder under CHECKPOINTS; hub: the repository it copies.
        mean / std: the pixel normalisation of the family's processor.
        variants: named random configurations (``tiny`` for tests, ``small`` for benchmarks,
            ``full`` the library's default size).
    """

    name: str
    title: str
    model_class: type[PreTrainedModel]
    session_class: type
    model_types: tuple[str, ...]
    folder: str
    hub: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    variants: Mapping[str, Callable[[], PretrainedConfig]]

    def random_model(self, variant: str) -> PreTrainedModel:
        """A model of a named configuration with random weights (tests, benchmarks)."""
        if variant not in self.variants:
            raise ConfigError(
                f"{self.name}: unknown variant {variant!r} (one of {', '.join(self.variants)})"
            )
        return self.model_class(self.variants[variant]()).eval()

    def expected(self) -> str:
        return (
            f"a {self.title} folder in the Hugging Face layout ({CONFIG_FILE} and "
            f"{' or '.join(WEIGHT_FILES)}, e.g. a copy of {self.hub})"
        )

    def load(self, folder: Path) -> PreTrainedModel:
        """The model of ``folder``, strictly loaded; a missing or malformed folder is an
        InputError naming it and the files expected."""
        self.check_folder(folder)
        hf_logging.disable_progress_bar()  # the runner prints one line per stage
        hf_logging.set_verbosity_error()  # the loading report: _check_loading says what matters
        try:
            model, info = self.model_class.from_pretrained(
                folder,
                local_files_only=True,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
            )
        except ImportError as exc:
            raise InputError(folder, f"{self.title} needs a package: {exc}") from None
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise InputError(folder, f"cannot load {self.title}: {_first_line(exc)}") from None
        _check_loading(folder, info)
        return model.eval()

    def check_folder(self, folder: Path) -> None:
        """Check that ``folder`` holds a config of this family and a weights file."""
        if not folder.is_dir():
            raise InputError(folder, f"weights folder is missing: expected {self.expected()}")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise InputError(folder, f"no weights file: expected {self.expected()}")
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise InputError(folder, f"no {CONFIG_FILE}: expected {self.expected()}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(folder / CONFIG_FILE, f"not valid JSON: {exc}") from None
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if model_type not in self.model_types:
            raise InputError(
                folder / CONFIG_FILE,
                f"holds a {model_type!r} model, not {self.title} (expected model_type "
                f"{' or '.join(map(repr, self.model_types))}; {self.expected()})",
            )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_loading(folder: Path, info: Mapping[str, Any]) -> None:
    """Strict loading: every parameter of the model comes from the folder, with its shape."""
    missing = sorted(info["missing_keys"])
    mismatched = sorted(info["mismatched_keys"])
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first: {missing[0]})")
    if mismatched:
        name, stored, expected = mismatched[0]
        problems.append(
            f"{len(mismatched)} of another shape (first: {name}, {list(stored)} stored, "
            f"{list(expected)} by config.json)"
        )
    if problems:
        raise InputError(folder, f"weights do not match the model: {'; '.join(problems)}")


def frame_pixels(image: Tensor, side: int, family: TrackerFamily) -> Tensor:
    """float32 [H, W, 3] RGB 0..255 -> the model's input float32 [3, side, side]."""
    x = image.permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(family.mean).view(3, 1, 1)
    std = torch.tensor(family.std).view(3, 1, 1)
    return (x[0] / 255.0 - mean) / std


def mask_input(mask: Tensor, side: int) -> Tensor:
    """A key mask bool [H, W] -> the session's mask input float32 [1, 1, side, side] (0 / 1)."""
    x = mask.float()[None, None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return (x >= 0.5).float()


def mask_logits(low_res: Tensor, side: int, size: tuple[int, int]) -> Tensor:
    """The model's mask logits [N, 1, h, w] -> [N, H, W] at the frame size, through the model's
    input size (as the library's ``post_process_masks``)."""
    x = F.interpolate(low_res.float(), size=(side, side), mode="bilinear", align_corners=False)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0]


# ---------------------------------------------------------------------------------------------
# Random configurations: tiny (tests), small (benchmarks), full (the library's default size).
# Sizes the library ties together: the memory channels are 64 (the SAM 3 tracker's memory
# attention reads 64 channels) and below the hidden size; every hidden size is one value.


def _hiera(side: int, dims: tuple[int, int, int, int], blocks: tuple[int, ...], hidden: int):
    backbone = Sam2HieraDetConfig(
        hidden_size=dims[0],
        num_attention_heads=1,
        blocks_per_stage=list(blocks),
        embed_dim_per_stage=list(dims),
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 4, 4],
        global_attention_blocks=[sum(blocks[:3]) - 1],
        window_positional_embedding_background_size=[2, 2],
        image_size=[side, side],
    )
    return Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=list(reversed(dims)),
        backbone_feature_sizes=[[side // s, side // s] for s in (4, 8, 16)],
        fpn_hidden_size=hidden,
    )


def _heads(side: int, patch: int, hidden: int) -> dict[str, Any]:
    """The prompt encoder, mask decoder, memory attention and memory encoder sizes."""
    return {
        "image_size": side,
        "prompt_encoder_config": {
            "hidden_size": hidden,
            "image_size": side,
            "patch_size": patch,
            "mask_input_channels": 4,
        },
        "mask_decoder_config": {
            "hidden_size": hidden,
            "mlp_dim": 2 * hidden,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 32,
        },
        "memory_attention_hidden_size": hidden,
        "memory_attention_num_layers": 1,
        "memory_attention_rope_feat_sizes": [side // patch, side // patch],
        "memory_encoder_hidden_size": hidden,
        "memory_encoder_output_channels": 64,
        "mask_downsampler_embed_dim": hidden,
        "memory_fuser_embed_dim": hidden,
        "memory_fuser_intermediate_dim": 2 * hidden,
    }


def _sam2(side: int, blocks: tuple[int, ...], hidden: int) -> Sam2VideoConfig:
    return Sam2VideoConfig(
        vision_config=_hiera(side, (8, 16, 32, 64), blocks, hidden),
        memory_attention_feed_forward_hidden_size=2 * hidden,
        **_heads(side, 16, hidden),
    )


def _edgetam(side: int, blocks: tuple[int, ...], hidden: int) -> EdgeTamVideoConfig:
    return EdgeTamVideoConfig(
        vision_config=_hiera(side, (8, 16, 32, 64), blocks, hidden),
        memory_attention_mlp_hidden_size=2 * hidden,
        memory_attention_rope_k_sizes=[2, 2],
        perceiver_resampler_num_latents=8,
        perceiver_resampler_num_latents_2d=4,
        perceiver_resampler_hidden_size=64,
        perceiver_resampler_mlp_intermediate_size=64,
        perceiver_resampler_attention_head_dim=64,
        perceiver_resampler_num_layers=1,
        **_heads(side, 16, hidden),
    )


def _sam3_tracker(side: int, layers: int, hidden: int) -> Sam3TrackerVideoConfig:
    grid = side // 14
    vit = Sam3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        image_size=side,
        patch_size=14,
        window_size=2,
        global_attn_indexes=[layers - 1],
        pretrain_image_size=side,
    )
    vision = Sam3VisionConfig(
        backbone_config=vit,
        fpn_hidden_size=hidden,
        backbone_feature_sizes=[[grid * 4, grid * 4], [grid * 2, grid * 2], [grid, grid]],
    )
    return Sam3TrackerVideoConfig(
        vision_config=vision,
        memory_attention_feed_forward_hidden_size=2 * hidden,
        **_heads(side, 14, hidden),
    )


SAM2 = TrackerFamily(
    name="sam2",
    title="SAM 2.1",
    model_class=Sam2VideoModel,
    session_class=Sam2VideoInferenceSession,
    model_types=("sam2_video", "sam2"),
    folder="sam2.1-hiera-large",
    hub="facebook/sam2.1-hiera-large",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    variants={
        "tiny": lambda: _sam2(64, (1, 1, 2, 1), 128),
        "small": lambda: _sam2(256, (1, 2, 4, 1), 128),
        "full": Sam2VideoConfig,
    },
)
SAM3_TRACKER = TrackerFamily(
    name="sam3_tracker",
    title="the SAM 3 tracker",
    model_class=Sam3TrackerVideoModel,
    session_class=Sam3TrackerVideoInferenceSession,
    model_types=("sam3_video", "sam3_tracker_video"),
    folder="sam3",
    hub="facebook/sam3",
    mean=HALF,
    std=HALF,
    variants={
        "tiny": lambda: _sam3_tracker(56, 2, 128),
        "small": lambda: _sam3_tracker(252, 4, 128),
        "full": Sam3TrackerVideoConfig,
    },
)
EDGETAM = TrackerFamily(
    name="edgetam",
    title="EdgeTAM",
    model_class=EdgeTamVideoModel,
    session_class=EdgeTamVideoInferenceSession,
    model_types=("edgetam_video", "edgetam"),
    folder="EdgeTAM-hf",
    hub="yonigozlan/EdgeTAM-hf",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    variants={
        "tiny": lambda: _edgetam(64, (1, 1, 2, 1), 128),
        "small": lambda: _edgetam(256, (1, 2, 4, 1), 128),
        "full": EdgeTamVideoConfig,
    },
)
