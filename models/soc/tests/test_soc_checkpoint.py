"""Checkpoints: the competition layout, the public release's ``voc.`` names, bad files, and a
checkpoint of another model (ReferFormer) refused before anything is loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from soc_testlib import competition_file, tiny_model

from rvos_core.errors import ConfigError, InputError
from rvos_core.paths import load_paths
from rvos_core.testing import parity_dir
from rvos_nn.checkpoint import CheckpointMismatch, check_checkpoint
from rvos_nn.checkpoint import load_checkpoint as load_with_rules
from rvos_nn.predictor import load_model_entry
from rvos_soc import ENTRY, TINY, load_checkpoint


def _positions() -> int:
    return TINY.text.max_position_embeddings


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items())


def test_competition_layout_loads_strictly(tmp_path: Path) -> None:
    entry = load_model_entry("soc")
    assert tuple(entry.variants) == ("full", "tiny") and entry.value_domain == "logit"
    assert entry.checkpoint_file == "soc.tar"
    source = tiny_model(seed=1)
    path = competition_file(tmp_path / "joint_base.tar", source.state_dict(), _positions())
    target = entry.build("tiny")
    report = load_with_rules(target, path, entry.checkpoint_rules)  # the driver's call
    assert report.ok and report.container == "model_state_dict"
    assert report.ignored["legacy-text-buffers"] == ["text_encoder.embeddings.position_ids"]
    assert _same_weights(target, source)


def test_public_release_names_load_through_the_key_map(tmp_path: Path) -> None:
    source = tiny_model(seed=2)
    state = {
        ("voc." + k[len("vita.") :] if k.startswith("vita.") else k): v
        for k, v in source.state_dict().items()
    }
    assert any(k.startswith("voc.") for k in state) and not any(
        k.startswith("vita.") for k in state
    )
    path = competition_file(tmp_path / "public.pth", state, _positions())
    target = tiny_model(seed=3)
    report = load_checkpoint(target, path)
    assert report.ok and report.renamed == {r"voc\.": sum(k.startswith("voc.") for k in state)}
    assert _same_weights(target, source)


def test_both_names_at_once_are_refused(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    state["voc.fq_pos.weight"] = state["vita.fq_pos.weight"].clone()
    path = competition_file(tmp_path / "both.pth", state, _positions())
    with pytest.raises(InputError, match=re.escape("both map to 'vita.fq_pos.weight'")):
        load_checkpoint(tiny_model(), path)


def test_profiler_counters_are_ignored_other_extras_are_not(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    state["vita.decoder_norm.total_ops"] = torch.zeros(1, dtype=torch.float64)
    state["total_params"] = torch.zeros(1, dtype=torch.float64)
    report = load_checkpoint(
        tiny_model(), competition_file(tmp_path / "thop.pth", state, _positions())
    )
    assert report.ok and len(report.ignored["thop-profiler-counters"]) == 2
    state["mask_refiner.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatch, match="1 unexpected"):
        load_checkpoint(tiny_model(), competition_file(tmp_path / "x.pth", state, _positions()))


def test_missing_and_misshaped_keys_are_reported_before_loading(tmp_path: Path) -> None:
    state = tiny_model(seed=4).state_dict()
    del state["controller.layers.2.bias"]
    state["vita.query_embed.weight"] = torch.zeros(5, TINY.transformer.d_model)
    path = competition_file(tmp_path / "bad.pth", state, _positions())
    target = tiny_model(seed=5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(target, path)
    report = caught.value.report
    assert report.missing == ["controller.layers.2.bias"]
    assert [k for k, _, _ in report.misshaped] == ["vita.query_embed.weight"]
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())  # untouched


@pytest.mark.parity
def test_a_referformer_checkpoint_is_refused_with_a_mismatch_report(tmp_path: Path) -> None:
    # the referformer fixture's state dict is a real ReferFormer checkpoint layout (tiny sizes)
    state = torch.load(parity_dir("referformer") / "state_dict.pt", weights_only=True)
    path = tmp_path / "referformer_ft.pth"
    torch.save({"model": state, "epoch": 1}, path)
    target = tiny_model(seed=6)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(target, path)
    report = caught.value.report
    message = str(caught.value)
    assert str(path) in message and "does not match the model" in message
    for prefix in ("resizer", "fusion_module", "pixel_decoder"):  # ReferFormer-only modules
        assert any(k.startswith(prefix + ".") for k in report.unexpected)
    for prefix in ("vita", "vlf", "lvf", "txt_proj", "spatial_decoder"):  # SOC-only modules
        assert any(k.startswith(prefix + ".") for k in report.missing)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())  # no partial load


def test_unreadable_files(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tiny_model(), damaged)
    with pytest.raises(InputError, match="missing"):
        load_checkpoint(tiny_model(), tmp_path / "absent.tar")
    empty = tmp_path / "empty.tar"
    torch.save({"epoch": 3, "model_state_dict": {}}, empty)
    with pytest.raises(InputError, match="no state dict found"):
        load_checkpoint(tiny_model(), empty)


@pytest.mark.weights
def test_the_real_checkpoint_loads_strictly() -> None:
    try:
        path = load_paths().checkpoints / ENTRY.checkpoint_file
    except ConfigError as exc:
        pytest.skip(f"no paths.env: {exc}")
    if not path.is_file():
        pytest.skip(f"{path} is not there (CHECKPOINTS in paths.env)")
    with torch.device("meta"):
        model = ENTRY.build("full")
    report = check_checkpoint(model, path, ENTRY.checkpoint_rules)
    assert report.ok, report.format()
    assert report.container == "model_state_dict"
