"""Starting weights of an AOT / DeAOT training: upstream's initialisation of every parameter, and
the ImageNet-22k Swin encoder that upstream's first (PRE) stage starts from.

Papers: Yang, Wei & Yang, "Associating Objects with Transformers for Video Object Segmentation"
(NeurIPS 2021); Yang & Yang, "Decoupling Features in Hierarchical Propagation for Video Object
Segmentation" (NeurIPS 2022); Liu et al., "Swin Transformer" (ICCV 2021) for the encoder weights.
Upstream: yoxu515/aot-benchmark @ 601c138 (the constructors and ``_init_weight`` of
``networks/models/{aot,deaot}.py``, ``networks/layers/{transformer,attention}.py``,
``networks/decoders/fpn.py``, ``networks/encoders/swin/swin_transformer.py``; the encoder loading
of ``Trainer.process_pretrained_model`` and ``utils/checkpoint.load_network``); the ``swin_large``
encoder and its file name from the competition copy RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d
(``soc_test/AOT/configs/models/swinl_aotl.py``).

``init_like_upstream`` gives each parameter the distribution upstream's constructors give it:

* every Linear, Conv2d, LayerNorm and GroupNorm its torch default (Kaiming-uniform a=√5 weights,
  uniform ±1/√fan_in biases; norms 1 and 0), as upstream builds them;
* the Swin relative position bias tables a normal of std 0.02 cut at ±2 std. The other Swin
  layers keep torch's defaults: upstream's ``SwinTransformer.init_weights`` (trunc-normal Linear
  weights, zero biases) is never called;
* in each propagation layer (AOT's LSTT block, DeAOT's gated propagation module) and in the FPN
  decoder, Xavier-uniform (gain 1) on every parameter of two or more dimensions: the linear and
  convolution weights, the depth-wise convolutions and AOT's ``relative_emb_v`` (3-D, zero before);
  1-D parameters keep their defaults;
* ``encoder_projector.weight`` Xavier-uniform; ``patch_wise_id_bank.weight`` orthogonal as a
  [d_model, num_ids·16·16] matrix with gain 16⁻² (their biases: defaults).

``load_imagenet_encoder`` reads the Swin authors' ImageNet-22k classification checkpoint
(``{'model': {...}}``; upstream's loader also takes 'state_dict' or a bare dict and strips
``module.``) into ``net.encoder``. Upstream loads every stored key the encoder has and drops the
others; here the dropped ones are named rules (the classifier's last stage and the patch merging
into it, which the encoder never builds; its final norm and head; the shift masks of its fixed
input size) and the encoder's per-output norms, which the classifier does not have, keep their
initialisation by a named allow-missing rule. ``relative_position_index`` is loaded, as upstream
does (its values are the encoder's own for the same window).

Differences: the draws come in another order than upstream's (same distributions, not the same
numbers for a seed; upstream also draws AOT's ``LSTT.mask_token``, which does not exist here, and
DeAOT first builds and discards AOT's propagation layers and decoder). Upstream's truncated normal
keeps the first of 4 draws inside ±2 std and, with probability ~4e-6, an outside draw; torch's
never does. Loading is strict: a file that lacks an encoder key or holds an unknown one is an
InputError, where upstream would keep the random weights or drop the key silently.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from torch import nn

from rvos_core.errors import InputError
from rvos_nn.checkpoint import CheckpointReport, CheckpointRules, KeyRule, load_checkpoint
from rvos_vos.network import ID_STRIDE, PropagationNet
from rvos_vos.propagators import CONTAINERS
from rvos_vos.swin2d import (
    SwinConfig,
    SwinTransformer2D,
    WindowAttention,
    relative_position_index,
    shift_region_mask,
)

IMAGENET_SWIN_FILE = "swin_large_patch4_window12_384_22k.pth"
"""Upstream's MODEL_ENCODER_PRETRAIN of swin_large (under PRETRAINED here, ``./pretrain_models/``
upstream), as the Swin authors distribute it. The swin_base models use
``swin_base_patch4_window7_224_22k.pth``."""

BIAS_TABLE_STD = 0.02
"""Std of the Swin relative position bias tables, cut at ±2 std."""
ID_BANK_GAIN = ID_STRIDE**-2
"""Gain of the orthogonal identity bank (upstream: ``16**-2`` without aligned corners)."""
DEFAULT_LAYERS = (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)
"""Layers whose parameters start at torch's defaults, as upstream's constructors leave them."""


# ---------------------------------------------------------------------------------------------
# Upstream's initialisation


def init_like_upstream(net: PropagationNet) -> None:
    """Re-draw every parameter of an AOT or DeAOT network from upstream's initial distributions
    (see the module docstring), in place, from torch's global generator."""
    filled = _torch_defaults(net)
    filled |= _swin_bias_tables(net.encoder)
    for layer in net.LSTT.layers:
        filled |= _xavier_matrices(layer)
    filled |= _xavier_matrices(net.decoder)
    nn.init.xavier_uniform_(net.encoder_projector.weight)
    _orthogonal_id_bank(net.patch_wise_id_bank, net.config.d_model)
    left = [name for name, param in net.named_parameters() if id(param) not in filled]
    if left:
        raise TypeError(f"init_like_upstream has no rule for the parameters {', '.join(left)}")


def _torch_defaults(net: nn.Module) -> set[int]:
    """Reset every DEFAULT_LAYERS module; returns the ids of the parameters it reset."""
    filled = set()
    for module in net.modules():
        if isinstance(module, DEFAULT_LAYERS):
            module.reset_parameters()
            filled |= {id(param) for param in module.parameters(recurse=False)}
    return filled


def _swin_bias_tables(encoder: nn.Module) -> set[int]:
    """Truncated-normal relative position bias tables [(2·window−1)², heads]; returns their ids."""
    tables = [
        m.relative_position_bias_table for m in encoder.modules() if isinstance(m, WindowAttention)
    ]
    for table in tables:
        nn.init.trunc_normal_(
            table, std=BIAS_TABLE_STD, a=-2 * BIAS_TABLE_STD, b=2 * BIAS_TABLE_STD
        )
    return {id(table) for table in tables}


def _xavier_matrices(module: nn.Module) -> set[int]:
    """Xavier-uniform every parameter of ``module`` with two or more dimensions; returns their ids."""
    matrices = [param for param in module.parameters() if param.dim() > 1]
    for param in matrices:
        nn.init.xavier_uniform_(param)
    return {id(param) for param in matrices}


def _orthogonal_id_bank(bank: nn.Conv2d, d_model: int) -> None:
    """The id bank's weight [d_model, num_ids, 16, 16], seen as a [d_model, num_ids·256] matrix:
    orthonormal rows scaled by ID_BANK_GAIN."""
    with torch.no_grad():
        nn.init.orthogonal_(bank.weight.view(d_model, -1), gain=ID_BANK_GAIN)


# ---------------------------------------------------------------------------------------------
# The ImageNet-22k Swin encoder


def imagenet_rules(config: SwinConfig) -> CheckpointRules:
    """How the Swin authors' classification checkpoint of ``config``'s architecture maps onto the
    encoder: same names; what the encoder does not build is dropped by name."""
    last = config.num_stages
    return CheckpointRules(
        ignore=(
            KeyRule(
                "removed-last-stage",
                rf"layers\.{last}\..+",
                "the classifier's last stage; upstream's encoder removes it",
            ),
            KeyRule(
                "last-patch-merging",
                rf"layers\.{last - 1}\.downsample\..+",
                "the patch merging into the removed stage",
            ),
            KeyRule(
                "classification-norm",
                r"norm\.(weight|bias)",
                "the classifier's final LayerNorm; the encoder normalises each output itself",
            ),
            KeyRule("classification-head", r"head\.(weight|bias)", "the ImageNet-22k classifier"),
            KeyRule(
                "shift-masks",
                r"layers\.\d+\.blocks\.\d+\.attn_mask",
                "shifted-window masks of the classifier's fixed input size; the encoder builds "
                "them per input",
            ),
        ),
        allow_missing=(
            KeyRule(
                "output-norms",
                r"norm\d+\.(weight|bias)",
                "the encoder's per-output LayerNorms; upstream keeps their initialisation (1, 0)",
            ),
        ),
        containers=CONTAINERS,
    )


def load_imagenet_encoder(net: PropagationNet, path: Path) -> CheckpointReport:
    """Load the ImageNet-22k Swin checkpoint ``path`` into ``net.encoder``, strictly under
    ``imagenet_rules``; every other parameter keeps its value. InputError (naming ``path`` and the
    missing / unexpected / mis-shaped keys) for a missing, damaged or other model's file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            path,
            f"the ImageNet-22k Swin checkpoint is missing (PRETRAINED in paths.env; upstream's "
            f"file for swin_large: {IMAGENET_SWIN_FILE})",
        )
    return load_checkpoint(net.encoder, path, imagenet_rules(net.config.swin))


def write_fake_imagenet_swin(
    path: Path, config: SwinConfig, *, num_classes: int = 8, seed: int = 0
) -> Path:
    """Write a Swin classification checkpoint in the layout of the Swin authors' files
    (``{'model': ...}``) for ``config``: every configured stage (the last included) with the patch
    mergings between them, a final norm, a ``num_classes`` head and the shift masks of the shifted
    blocks; random values from ``seed``, the real ``relative_position_index``. For tests."""
    generator = torch.Generator().manual_seed(seed)
    state = _classifier_state(config, generator)
    width = config.stage_dim(config.num_stages)
    classifier_only = {
        "norm.weight": (width,),
        "norm.bias": (width,),
        "head.weight": (num_classes, width),
        "head.bias": (num_classes,),
    }
    state |= {
        key: torch.randn(shape, generator=generator) for key, shape in classifier_only.items()
    }
    state |= _shift_masks(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return path


def _classifier_state(config: SwinConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The stages, mergings and patch embedding of the classifier: the encoder of ``config``
    with one more stage built (a never-built, empty fifth entry appended), its output norms left
    out."""
    classifier = dataclasses.replace(
        config, depths=(*config.depths, 0), num_heads=(*config.num_heads, 1)
    )
    with torch.device("meta"):
        layout = SwinTransformer2D(config=classifier).state_dict()
    index = relative_position_index(config.window_size)
    return {
        key: index.clone()
        if key.endswith("relative_position_index")
        else torch.randn(value.shape, generator=generator)
        for key, value in layout.items()
        if not re.fullmatch(r"norm\d+\..+", key)
    }


def _shift_masks(config: SwinConfig) -> dict[str, torch.Tensor]:
    """``attn_mask`` [nW, N, N] of the odd blocks of every stage but the last (the 384-pixel
    classifier's last stage is one window and does not shift); 2x2 windows here."""
    win = config.window_size
    mask = shift_region_mask(2 * win, 2 * win, win, win // 2, torch.device("cpu"))
    return {
        f"layers.{stage}.blocks.{block}.attn_mask": mask.clone()
        for stage in range(config.num_stages)
        for block in range(1, config.depths[stage], 2)
    }
