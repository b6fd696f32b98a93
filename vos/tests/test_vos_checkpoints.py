"""Strict checkpoint loading: the full-size layouts of ``keys_full.json`` (meta device), the\nupstream container, the named variants, wrong checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from vos_testlib import load_pt, tiny_net, write_checkpoint

from rvos_core.errors import InputError
from rvos_core.testing import parity_dir
from rvos_nn.checkpoint import CheckpointMismatch, CheckpointReport, compare, map_keys
from rvos_vos.propagators import load_propagator

# (propagator, variant of ours, where the fixture lists the full keys)
FULL = [
    ("aot", "full", ("aot", None)),
    ("deaot", "full", ("deaot", "inferred_swinl_deaotl")),
    ("deaot", "swinb", ("deaot", "published_swinb_deaotl")),
]


def full_keys(fixture: str, variant: str | None) -> dict:
    table = json.loads((parity_dir(fixture) / "keys_full.json").read_text())
    return table if variant is None else table["variants"][variant]


def meta_net(name: str, variant: str) -> torch.nn.Module:
    with torch.device("meta"):
        return load_propagator(name).build(load_propagator(name).config(variant))


@pytest.mark.parity
@pytest.mark.parametrize(("name", "variant", "where"), FULL)
def test_named_variant_is_the_fixture_config(
    name: str, variant: str, where: tuple[str, str | None]
) -> None:
    config = load_propagator(name).config_type.from_upstream(full_keys(*where)["config"])
    assert config == load_propagator(name).config(variant)


@pytest.mark.parity
@pytest.mark.parametrize(("name", "variant", "where"), FULL)
def test_full_checkpoint_layout_loads_strictly(
    name: str, variant: str, where: tuple[str, str | None]
) -> None:
    """The upstream trainer's layout ('module.'-prefixed keys) passes the strict comparison."""
    stored = {
        "module." + key: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        for key, shape, dtype, _ in full_keys(*where)["keys"]
    }
    rules = load_propagator(name).rules
    report = CheckpointReport(source="meta")
    compare(meta_net(name, variant), map_keys(stored, rules, report), rules, report)
    assert report.ok, report.format()
    assert report.stripped == len(stored)


@pytest.mark.parity
@pytest.mark.parametrize("name", ["aot", "deaot"])
@pytest.mark.parametrize("prefix", ["module.", ""])
def test_container_checkpoint_loads(name: str, prefix: str, tmp_path: Path) -> None:
    path = write_checkpoint(name, tmp_path / "ckpt.pth", prefix)
    net = tiny_net(name)
    for parameter in net.parameters():
        parameter.data.zero_()
    load_propagator(name).load(net, path)
    for key, value in load_pt(name, "state_dict.pt").items():
        assert torch.equal(net.state_dict()[key], value)


@pytest.mark.parity
def test_unused_mask_token_is_ignored_for_aot(tmp_path: Path) -> None:
    state = {**load_pt("aot", "state_dict.pt"), "LSTT.mask_token": torch.zeros(1, 1, 64)}
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth")
    load_propagator("aot").load(tiny_net("aot"), tmp_path / "ckpt.pth")


@pytest.mark.parity
@pytest.mark.parametrize(("name", "other"), [("aot", "deaot"), ("deaot", "aot")])
def test_checkpoint_of_the_other_propagator(name: str, other: str, tmp_path: Path) -> None:
    path = write_checkpoint(other, tmp_path / "other.pth")
    with pytest.raises(InputError, match=f"{other} checkpoint") as error:
        load_propagator(name).load(tiny_net(name), path)
    assert error.value.path == path


@pytest.mark.parity
def test_missing_key_is_reported(tmp_path: Path) -> None:
    state = dict(load_pt("aot", "state_dict.pt"))
    del state["decoder.conv_out.bias"]
    torch.save({"state_dict": state}, tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointMismatch, match="missing") as error:
        load_propagator("aot").load(tiny_net("aot"), tmp_path / "ckpt.pth")
    assert error.value.report.missing == ["decoder.conv_out.bias"]
