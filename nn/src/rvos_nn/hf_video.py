"""The transformers video models of the SAM family (SAM 2.1, SAM 3 and its tracker, EdgeTAM):
their weights folders, their pixels, random configurations (shared by ``rvos_vos.trackers`` and
the ``sam3`` model package).

Weights are a folder in the Hugging Face layout (``config.json`` + ``model.safetensors``), loaded
with ``from_pretrained(local_files_only=True)`` and checked strictly (no missing or mis-shaped
key). The library's processors need torchvision, which this project does not install, so
``frame_pixels`` does their frame step: resized (bilinear, antialiased) to the model's square
input, /255, the family's mean / std.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import (
    EdgeTamVideoConfig,
    PreTrainedModel,
    Sam2HieraDetConfig,
    Sam2VideoConfig,
    Sam2VisionConfig,
    Sam3Config,
    Sam3TrackerVideoConfig,
    Sam3VideoConfig,
    Sam3VisionConfig,
    Sam3ViTConfig,
)
from transformers.utils import logging as hf_logging

from rvos_core.errors import InputError
from rvos_core.runfolder import file_record

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class HubWeights:
    """A model whose weights are a folder in the Hugging Face layout.

    Attributes:
        title: how messages name the model.
        model_class: the library's model class.
        model_types: the ``model_type`` values of a config.json it loads.
        folder: the default folder under CHECKPOINTS; hub: the repository it copies.
    """

    title: str
    model_class: type[PreTrainedModel]
    model_types: tuple[str, ...]
    folder: str
    hub: str

    def expected(self) -> str:
        return (
            f"a {self.title} folder in the Hugging Face layout ({CONFIG_FILE} and "
            f"{' or '.join(WEIGHT_FILES)}, e.g. a copy of {self.hub})"
        )

    def check(self, folder: Path) -> None:
        """Check that ``folder`` holds a config of this model and a weights file."""
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

    def load(self, folder: Path) -> PreTrainedModel:
        """The model of ``folder`` in eval mode, strictly loaded; a missing or malformed folder
        is an InputError naming it and the files expected."""
        self.check(folder)
        hf_logging.disable_progress_bar()  # the runner prints one line per stage
        verbosity = hf_logging.get_verbosity()
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
        finally:
            hf_logging.set_verbosity(verbosity)
        _check_loading(folder, info)
        return model.eval()

    def record(self, folder: Path) -> dict[str, Any]:
        """What run.json records: the folder's name, its config and weight files (name, size,
        sha256); checked first (``check``)."""
        self.check(folder)
        files = [folder / CONFIG_FILE, *sorted(folder.glob("model.safetensors*"))]
        return {"folder": folder.name, "files": [file_record(path) for path in files]}


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


def frame_pixels(
    image: Tensor, side: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Tensor:
    """float32 [H, W, 3] RGB 0..255 -> the model's input float32 [3, side, side]."""
    x = image.permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return (x[0] / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


# ---------------------------------------------------------------------------------------------
# Random configurations (tests, benchmarks). Sizes the library ties together: the memory channels
# are 64 (the SAM 3 tracker's memory attention reads 64 channels) and below the hidden size, and
# the hidden sizes are one value.


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


def sam2_config(side: int, blocks: tuple[int, ...], hidden: int) -> Sam2VideoConfig:
    """SAM 2.1 at input ``side`` (a multiple of 16) with Hiera stages of ``blocks`` blocks."""
    return Sam2VideoConfig(
        vision_config=_hiera(side, (8, 16, 32, 64), blocks, hidden),
        memory_attention_feed_forward_hidden_size=2 * hidden,
        **_heads(side, 16, hidden),
    )


def edgetam_config(side: int, blocks: tuple[int, ...], hidden: int) -> EdgeTamVideoConfig:
    """EdgeTAM with SAM 2's Hiera encoder (the released RepViT encoder needs timm)."""
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


def sam3_tracker_config(side: int, layers: int, hidden: int) -> Sam3TrackerVideoConfig:
    """The SAM 3 tracker at input ``side`` (a multiple of 14) with a ViT of ``layers`` layers."""
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


def sam3_video_config(side: int, layers: int, hidden: int, queries: int) -> Sam3VideoConfig:
    """SAM 3 (text-prompted detector + tracker) sharing the tracker's vision encoder, with
    ``queries`` detection queries and a one-layer CLIP text encoder of 100 tokens."""
    tracker = sam3_tracker_config(side, layers, hidden)
    small = {"hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 2 * hidden}
    detector = Sam3Config(
        vision_config=tracker.vision_config.to_dict(),
        text_config={
            "vocab_size": 100,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "projection_dim": 32,
            "max_position_embeddings": 32,
            "bos_token_id": 98,
            "eos_token_id": 99,
            "pad_token_id": 99,
        },
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": queries},
        mask_decoder_config={
            "hidden_size": hidden,
            "num_upsampling_stages": 2,
            "num_attention_heads": 2,
        },
    )
    return Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=side // 14 * 4,
        hotstart_delay=2,
        hotstart_unmatch_thresh=1,
        hotstart_dup_thresh=1,
    )
