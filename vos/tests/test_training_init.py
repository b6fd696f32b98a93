"""Tests of rvos_vos.training.init: upstream's initial distributions on the tiny networks, and the
ImageNet-22k Swin encoder loaded from fake files in the Swin authors' layout."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from rvos_core.errors import InputError
from rvos_vos.aot.model import build as build_aot
from rvos_vos.deaot.model import build as build_deaot
from rvos_vos.network import PropagationNet
from rvos_vos.swin2d import SwinConfig
from rvos_vos.training import (
    IMAGENET_SWIN_FILE,
    init_like_upstream,
    load_imagenet_encoder,
    write_fake_imagenet_swin,
)

BUILDERS: dict[str, Callable[[str], PropagationNet]] = {"aot": build_aot, "deaot": build_deaot}
OUTPUT_NORM = re.compile(r"norm\d+\.(weight|bias)")


def initialised(name: str, seed: int = 0) -> PropagationNet:
    """A tiny network whose parameters are all NaN before ``init_like_upstream`` runs."""
    net = BUILDERS[name]("tiny")
    with torch.no_grad():
        for param in net.parameters():
            param.fill_(float("nan"))
    torch.manual_seed(seed)
    init_like_upstream(net)
    return net


def fans(param: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight [out, in, *kernel] as PyTorch's initialisers count them."""
    receptive = param[0][0].numel()
    return param.shape[1] * receptive, param.shape[0] * receptive


def xavier_bound(param: Tensor) -> float:
    fan_in, fan_out = fans(param)
    return math.sqrt(6.0 / (fan_in + fan_out))


def assert_uniform(params: dict[str, Tensor], bound: Callable[[Tensor], float]) -> None:
    """Each tensor drawn from Uniform(-bound, bound): within the bound, and with the uniform's std
    (bound/√3) pooled over all tensors and in each tensor of at least 2000 values."""
    scaled = {k: p.detach().flatten() / bound(p) for k, p in params.items()}
    unit_std = 1 / math.sqrt(3)
    for key, values in scaled.items():
        assert values.abs().max().item() <= 1.0 + 1e-6, key
        if values.numel() >= 2000:
            assert values.std().item() == pytest.approx(unit_std, rel=0.1), key
    assert torch.cat(list(scaled.values())).std().item() == pytest.approx(unit_std, rel=0.03)


@pytest.mark.parametrize("name", BUILDERS)
def test_every_parameter_is_drawn_again(name: str) -> None:
    net = initialised(name)
    assert [k for k, p in net.named_parameters() if not torch.isfinite(p).all()] == []


@pytest.mark.parametrize("name", BUILDERS)
def test_propagation_layers_decoder_and_projector_matrices_are_xavier(name: str) -> None:
    net = initialised(name)
    prefixes = ("LSTT.layers.", "decoder.", "encoder_projector.")
    matrices = {k: p for k, p in net.named_parameters() if p.dim() > 1 and k.startswith(prefixes)}
    if name == "aot":
        assert "LSTT.layers.0.short_term_attn.relative_emb_v" in matrices
    assert_uniform(matrices, xavier_bound)


@pytest.mark.parametrize("name", BUILDERS)
def test_linear_and_conv_layers_elsewhere_keep_torch_defaults(name: str) -> None:
    """Kaiming-uniform (a=√5) weights and biases both bounded by 1/√fan_in: the Swin layers
    (upstream never calls its trunc-normal ``init_weights``) and every bias."""
    net = initialised(name)
    weights = {
        k: p
        for k, p in net.named_parameters()
        if k.startswith("encoder.")
        and k.endswith("weight")
        and p.dim() > 1
        and "bias_table" not in k
    }
    assert_uniform(weights, lambda p: 1 / math.sqrt(fans(p)[0]))
    for module in net.modules():
        if isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
            bound = 1 / math.sqrt(fans(module.weight)[0])
            assert module.bias.abs().max().item() <= bound


@pytest.mark.parametrize("name", BUILDERS)
def test_norms_start_at_one_and_zero(name: str) -> None:
    net = initialised(name)
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm | nn.GroupNorm)]
    assert len(norms) > 10
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_swin_bias_tables_are_normal_with_std_002_cut_at_two_std() -> None:
    net = initialised("aot")
    tables = torch.cat(
        [p.flatten() for k, p in net.named_parameters() if k.endswith("bias_table")]
    ).detach()
    assert tables.abs().max().item() <= 0.04
    # std of a standard normal cut at ±2: 0.8796
    assert tables.std().item() == pytest.approx(0.02 * 0.8796, rel=0.05)


@pytest.mark.parametrize("name", BUILDERS)
def test_id_bank_rows_are_orthogonal_with_gain_16_to_the_minus_2(name: str) -> None:
    net = initialised(name)
    weight = net.patch_wise_id_bank.weight.detach().reshape(net.config.d_model, -1)
    gram = weight @ weight.T * 16.0**4
    torch.testing.assert_close(gram, torch.eye(net.config.d_model), atol=1e-4, rtol=0)


def test_init_is_a_function_of_the_seed() -> None:
    first, again, other = initialised("deaot", 3), initialised("deaot", 3), initialised("deaot", 4)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    differ = [k for k, v in first.named_parameters() if not torch.equal(v, other.get_parameter(k))]
    assert (
        "encoder.patch_embed.proj.weight" in differ and "LSTT.layers.0.linear_QV.weight" in differ
    )


def test_a_parameter_without_a_rule_is_refused() -> None:
    net = build_aot("tiny")
    net.register_parameter("scale", nn.Parameter(torch.ones(3)))
    with pytest.raises(TypeError, match="scale"):
        init_like_upstream(net)


# ---------------------------------------------------------------------------------------------
# The ImageNet-22k Swin encoder


def fake_file(folder: Path, config: SwinConfig | None = None) -> Path:
    swin = config or build_aot("tiny").config.swin
    return write_fake_imagenet_swin(folder / IMAGENET_SWIN_FILE, swin)


@pytest.mark.parametrize("name", BUILDERS)
def test_round_trip_puts_the_files_weights_into_the_encoder(name: str, tmp_path: Path) -> None:
    path = fake_file(tmp_path)
    net = initialised(name)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_imagenet_encoder(net, path)
    assert report.ok and report.container == "model"
    assert set(report.ignored) == {
        "removed-last-stage",
        "last-patch-merging",
        "classification-norm",
        "classification-head",
        "shift-masks",
    }
    assert sorted(report.allowed_missing["output-norms"]) == [
        f"norm{i}.{kind}" for i in range(3) for kind in ("bias", "weight")
    ]
    stored = torch.load(path, weights_only=True)["model"]
    for key, value in net.state_dict().items():
        inner = key.removeprefix("encoder.")
        if key.startswith("encoder.") and not OUTPUT_NORM.fullmatch(inner):
            assert torch.equal(value, stored[inner]), key
        else:
            assert torch.equal(value, before[key]), key


def test_the_fake_file_has_the_classifiers_layout(tmp_path: Path) -> None:
    stored = torch.load(fake_file(tmp_path), weights_only=True)["model"]
    assert stored["head.weight"].shape == (8, 128)  # tiny: embed_dim 16 · 2³
    assert "layers.3.blocks.1.mlp.fc2.weight" in stored
    assert "layers.2.downsample.reduction.weight" in stored
    assert "layers.0.blocks.1.attn_mask" in stored and "layers.0.blocks.0.attn_mask" not in stored
    assert not any(OUTPUT_NORM.fullmatch(key) for key in stored)


def drop_key(path: Path) -> None:
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["model"]["layers.1.blocks.0.attn.qkv.weight"]
    torch.save(checkpoint, path)


def other_model(path: Path) -> None:
    torch.save({"state_dict": build_aot("tiny").state_dict()}, path)


def wider(path: Path) -> None:
    write_fake_imagenet_swin(
        path, SwinConfig(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
    )


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (drop_key, r"(?s)missing \(1\):.*attn\.qkv\.weight"),
        (other_model, r"(?s)another model.*unexpected \(196\):.*encoder\.\*"),
        (
            wider,
            r"(?s)mis-shaped.*patch_embed\.proj\.weight: float32\[32, 3, 4, 4\] vs float32\[16",
        ),
        (truncate, "not a readable PyTorch checkpoint"),
        (delete, f"checkpoint is missing.*{re.escape(IMAGENET_SWIN_FILE)}"),
    ],
)
def test_a_wrong_file_is_an_input_error_naming_it(
    damage: Callable[[Path], None], expected: str, tmp_path: Path
) -> None:
    path = fake_file(tmp_path)
    damage(path)
    net = initialised("aot")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(InputError, match=expected) as caught:
        load_imagenet_encoder(net, path)
    assert caught.value.path == path and str(caught.value).startswith(str(path))
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
