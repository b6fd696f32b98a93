"""The registered entry: checkpoints in the competition layout, wrong checkpoints, driver runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from mutr_testlib import tiny_model

from rvos_core.data import open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.paths import load_paths
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import parity_dir, unset_path_variables
from rvos_mutr import CHECKPOINT_RULES, ENTRY, TINY, build
from rvos_mutr import load_checkpoint as load_mutr
from rvos_mutr.parity import fixture_config
from rvos_nn import checkpoint_report as checkpoint_cli
from rvos_nn.checkpoint import CheckpointMismatch, check_checkpoint, load_checkpoint
from rvos_nn.infer import InferSettings, infer, main
from rvos_nn.predictor import load_model_entry
from rvos_nn.testing import pretrained_folder


def _competition_file(path: Path, state: dict[str, torch.Tensor], max_positions: int) -> Path:
    """A checkpoint as upstream's MUTR/train.py saves it (legacy position_ids included)."""
    model = dict(state)
    model["text_encoder.embeddings.position_ids"] = torch.arange(max_positions)[None]
    args = argparse.Namespace(backbone="video_swin_b_p4w7", with_box_refine=True)
    torch.save(
        {"model": model, "optimizer": {}, "lr_scheduler": {}, "epoch": 3, "args": args}, path
    )
    return path


def _fixture_state(name: str) -> dict[str, torch.Tensor]:
    return torch.load(parity_dir(name) / "state_dict.pt", weights_only=True)


def _referformer_file(path: Path) -> Path:
    """The referformer fixture's weights saved as upstream saves a ReferFormer checkpoint."""
    config = json.loads((parity_dir("referformer") / "config.json").read_text())
    positions = config["build"]["roberta_config"]["max_position_embeddings"]
    return _competition_file(path, _fixture_state("referformer"), positions)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_entry_loads_the_competition_layout_strictly(tmp_path: Path) -> None:
    entry = load_model_entry("mutr")
    assert tuple(entry.variants) == ("full", "tiny") and entry.value_domain == "logit"
    assert entry.checkpoint_file == "mutr.pth"
    source = tiny_model(seed=1)
    positions = source.config.text.max_position_embeddings
    path = _competition_file(tmp_path / "ckpt.pth", source.state_dict(), positions)
    target = entry.build("tiny")
    report = load_checkpoint(target, path, entry.checkpoint_rules)
    assert report.ok and report.container == "model"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


@pytest.mark.parity
def test_a_referformer_checkpoint_is_refused_with_a_report_and_nothing_loaded(
    tmp_path: Path,
) -> None:
    referformer = _fixture_state("referformer")
    path = _referformer_file(tmp_path / "referformer.pth")
    model = build(fixture_config(parity_dir("mutr")))
    before = _snapshot(model)
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(model, path, load_model_entry("mutr").checkpoint_rules)
    report = caught.value.report
    # Expected from the two fixtures' state dicts: what MUTR has and ReferFormer lacks, the
    # reverse, and the shared keys whose shapes differ (none when both fixtures have one size).
    mutr = _fixture_state("mutr")
    shared = set(mutr) & set(referformer)
    assert sorted(report.missing) == sorted(set(mutr) - set(referformer))
    assert {k.split(".")[0] for k in report.missing} == {"MTA", "mti"}
    assert sorted(report.unexpected) == sorted(set(referformer) - set(mutr))
    assert sorted(k for k, *_ in report.misshaped) == sorted(
        k for k in shared if mutr[k].shape != referformer[k].shape
    )
    assert "does not match the model" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_damaged_and_foreign_files(tmp_path: Path) -> None:
    entry = load_model_entry("mutr")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(entry.build("tiny"), truncated, entry.checkpoint_rules)
    state = tiny_model().state_dict()
    del state["mti.query_feat.weight"]
    state["mti.extra.weight"] = torch.zeros(1)
    state["MTA.layers.0.linear1.weight"] = torch.zeros(3, 3)
    path = _competition_file(tmp_path / "bad.pth", state, TINY.text.max_position_embeddings)
    with pytest.raises(CheckpointMismatch) as caught:
        load_checkpoint(entry.build("tiny"), path, entry.checkpoint_rules)
    report = caught.value.report
    assert report.missing == ["mti.query_feat.weight"]
    assert report.unexpected == ["mti.extra.weight"]
    assert [k for k, *_ in report.misshaped] == ["MTA.layers.0.linear1.weight"]


def _dataset(root: Path) -> Path:
    specs = [
        VideoSpec("vid_a", expressions=2, frames=3, size=(36, 48)),
        VideoSpec("vid_b", expressions=1, frames=1, size=(40, 40)),
    ]
    write_refytvos(root, "valid", specs)
    return root


def test_driver_run_with_the_tiny_variant(tmp_path: Path) -> None:
    dataset = open_dataset("refytvos", _dataset(tmp_path / "data"), "valid")
    settings = InferSettings(
        variant="tiny",
        checkpoint=None,
        pretrained=pretrained_folder(tmp_path / "pre"),
        options={"short_side": "48"},
    )
    assert infer(load_model_entry("mutr"), dataset, tmp_path / "run", settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"] == "mutr" and run["value_domain"] == "logit"
    assert run["config"]["options"] == {"short_side": "48"}
    scores = json.loads((tmp_path / "run" / "scores" / "vid_a.json").read_text())
    assert sorted(scores) == sorted(dataset.video("vid_a").exp_ids)
    assert all(len(v) == 3 and len(set(v)) == 1 for v in scores.values())  # constant over time


def test_driver_run_in_bf16_on_the_cpu(tmp_path: Path) -> None:
    dataset = open_dataset("refytvos", _dataset(tmp_path / "data"), "valid")
    settings = InferSettings(
        variant="tiny",
        checkpoint=None,
        pretrained=pretrained_folder(tmp_path / "pre"),
        precision="bf16",
        options={"short_side": "32"},
        save_probs=True,
    )
    assert infer(load_model_entry("mutr"), dataset, tmp_path / "run", settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["precision"] == "bf16" and run["has_probs"]


@pytest.mark.parity
def test_cli_refuses_a_referformer_checkpoint_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data")
    pretrained = pretrained_folder(tmp_path / "pre")
    env = tmp_path / "paths.env"
    env.write_text(
        f"DATA = {data}\nPRETRAINED = {pretrained}\nCHECKPOINTS = {tmp_path}\n"
        f"WORK = {tmp_path / 'work'}\nSPLIT = valid\n"
    )
    unset_path_variables(monkeypatch)
    monkeypatch.setenv("RVOS_PATHS_ENV", str(env))
    path = _referformer_file(tmp_path / "referformer_ft.pth")
    out = tmp_path / "run"
    args = ["mutr", "--out", str(out), "--variant", "tiny", "--checkpoint", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not match the model" in err and "mti" in err
    assert not out.exists()
    assert checkpoint_cli.main(["mutr", str(path), "--variant", "tiny"]) == 1


def test_package_loader_is_the_entry_rules(tmp_path: Path) -> None:
    source = tiny_model(seed=2)
    path = _competition_file(
        tmp_path / "mutr.pth", source.state_dict(), TINY.text.max_position_embeddings
    )
    target = build(TINY)
    assert load_mutr(target, path).ok and ENTRY.checkpoint_rules is CHECKPOINT_RULES
    assert torch.equal(target.mti.query_feat.weight, source.mti.query_feat.weight)


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
    report = check_checkpoint(model, path, CHECKPOINT_RULES)
    assert report.ok, report.format()
    assert report.container == "model"
