"""The command on run folders: the full procedure against the upstream evaluator's PNGs, the
empty-key fallback, carried scores and key frames, provenance, sharding and resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from vos_testlib import clip_length, free_running_labels, load_pt, make_setup, sure_pixels

from rvos_core.errors import ConfigError
from rvos_core.runfolder import Run
from rvos_vos.parity import upstream_trajectory
from rvos_vos.propagate import _parser, main, settings_from_args
from rvos_vos.propagators import load_propagator


@pytest.mark.parity
@pytest.mark.parametrize("name", ["aot", "deaot"])
def test_procedure_matches_upstream_pngs(name: str, tmp_path: Path) -> None:
    trace = load_pt(name, "trace_bidirectional.pt")
    key = trace["key_frame"]
    count = trace["final"]["png"].shape[0]
    setup = make_setup(name, tmp_path, {"v": 3}, {"v": {"0": key, "1": key, "2": count - 1}})
    out = tmp_path / "out"
    assert main(setup.argv(out)) == 0
    result, video = Run(out), setup.dataset.video("v")
    # The command runs the library procedure: its masks are those labels, bit for bit. Those
    # equal upstream's where the margin is sure, on upstream's trajectory (upstream_trajectory).
    labels = free_running_labels(name, trace)
    assert sorted(labels) == [t for t in range(count) if t != key]
    for t, label in labels.items():
        assert np.array_equal(result.mask_frame(video, "0", t), label.numpy() > 0), f"frame {t}"
    expected = trace["final"]["png"].numpy() > 0
    for t in upstream_trajectory(labels, trace["final"]["label"]):
        ours, sure = labels[t].numpy() > 0, sure_pixels(trace, t)
        assert np.array_equal(ours & sure, expected[t] & sure), f"frame {t}"
    for exp_id, k in (("0", key), ("1", key), ("2", count - 1)):
        frames = range(count) if exp_id == "1" else [k]
        for t in frames:  # key masks (and every mask of the empty-key expression) copied as is
            source = setup.run.mask_path("v", exp_id, video.frames[t]).read_bytes()
            assert result.mask_path("v", exp_id, video.frames[t]).read_bytes() == source
    assert result.key_frames() == setup.run.key_frames()
    assert result.scores(video) == setup.run.scores(video)


@pytest.mark.parity
def test_provenance(tmp_path: Path) -> None:
    key = load_pt("deaot", "trace_bidirectional.pt")["key_frame"]
    setup = make_setup("deaot", tmp_path, {"v": 1}, {"v": {"0": key}})
    out = tmp_path / "out"
    assert main(setup.argv(out, "--max-long-term", "4")) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["producer"] == "rvos_vos.propagate deaot"
    assert meta["inputs"] == [setup.run.input_record()]
    assert meta["config"]["propagator"] == "deaot"
    digest = hashlib.sha256(setup.checkpoint.read_bytes()).hexdigest()
    assert meta["checkpoint"]["sha256"] == digest
    assert meta["config"]["memory"] == {
        "long_term_gap": setup.trace["long_term_mem_gap"],
        "reference_resets_step": False,
        "max_long_term": 4,
    }
    assert meta["config"]["views"]["scales"] == sorted({v["scale"] for v in setup.trace["views"]})
    assert meta["counts"] == {
        "videos": 1,
        "expressions": 1,
        "masks": len(setup.dataset.video("v").frames),
    }


def tree_bytes(root: Path) -> dict[str, bytes]:
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "run.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parity
def test_shards_and_resume_give_the_same_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    last = clip_length("aot") - 1  # 'a' propagates forward only, 'b' backward only
    setup = make_setup("aot", tmp_path, {"a": 1, "b": 1}, {"a": {"0": 0}, "b": {"0": last}})
    fast = ("--scales", "1.0", "--no-flip")
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert main([*setup.argv(whole), *fast]) == 0
    assert main([*setup.argv(sharded), *fast, "--shard", "1/2"]) == 0
    capsys.readouterr()
    assert not (sharded / "run.json").exists()  # one shard is not the run
    assert (sharded / "Annotations" / "b").is_dir() and not (sharded / "Annotations" / "a").exists()
    assert main([*setup.argv(sharded), *fast]) == 0  # resumes: only 'a' is left
    assert "1 videos written; run complete" in capsys.readouterr().err
    assert (sharded / "run.json").is_file()
    assert tree_bytes(sharded) == tree_bytes(whole)
    assert main([*setup.argv(sharded), *fast]) == 0
    assert "nothing to do" in capsys.readouterr().err


@pytest.mark.parity
def test_expression_groups_give_the_same_bytes(tmp_path: Path) -> None:
    """Expressions propagated together (any group size) or one at a time: identical run folders,
    and a resume may use another group size. '1' has an empty key mask (the copy fallback)."""
    last = clip_length("deaot") - 1
    keys = {"0": 0, "1": 1, "2": last, "3": last // 2, "4": 1}
    setup = make_setup("deaot", tmp_path, {"v": 5, "w": 2}, {"v": keys, "w": {"0": 2, "1": 0}})
    fast = ("--scales", "1.0", "--no-flip")
    runs = {}
    for group in ("1", "2", "4"):
        runs[group] = tmp_path / f"group{group}"
        assert main([*setup.argv(runs[group]), *fast, "--expression-group", group]) == 0
    assert tree_bytes(runs["1"]) == tree_bytes(runs["2"]) == tree_bytes(runs["4"])
    resumed = tmp_path / "resumed"
    assert main([*setup.argv(resumed), *fast, "--shard", "0/2", "--expression-group", "1"]) == 0
    assert main([*setup.argv(resumed), *fast, "--expression-group", "3"]) == 0
    assert tree_bytes(resumed) == tree_bytes(runs["1"])


def test_expression_group_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["aot", "--checkpoint", "c.pth", "--run", "r", "--out", str(tmp_path / "o")]
    assert main([*argv, "--data", str(tmp_path), "--expression-group", "0"]) == 2
    assert "--expression-group" in capsys.readouterr().err


@pytest.mark.parity
def test_resume_refuses_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    last = clip_length("aot") - 1  # 'a' propagates forward only, 'b' backward only
    setup = make_setup("aot", tmp_path, {"a": 1, "b": 1}, {"a": {"0": 0}, "b": {"0": last}})
    out = tmp_path / "out"
    fast = ("--scales", "1.0", "--no-flip")
    assert main([*setup.argv(out), *fast, "--shard", "0/2"]) == 0
    assert main([*setup.argv(out), *fast, "--max-long-term", "3"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_precision_amp_needs_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["aot", "--checkpoint", "c.pth", "--run", "r", "--out", str(tmp_path / "o")]
    argv += ["--data", str(tmp_path), "--split", "valid", "--precision", "amp"]
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(argv) == 2
    assert "--device cuda" in capsys.readouterr().err


def test_precision_follows_the_drivers_rule(tmp_path: Path) -> None:
    """bf16 autocast runs on the CPU as in rvos_nn.infer (fp16 needs CUDA); variants are named
    as the models' ("full")."""
    checkpoint = tmp_path / "c.pth"
    checkpoint.write_bytes(b"")
    argv = ["aot", "--checkpoint", str(checkpoint), "--run", "r", "--out", "o"]
    settings = settings_from_args(_parser().parse_args([*argv, "--precision", "bf16"]))
    assert (settings.precision, settings.device.type) == ("bf16", "cpu")
    assert settings.config == load_propagator("aot").variants["full"]
    with pytest.raises(ConfigError, match="fp16 needs --device cuda"):
        settings_from_args(_parser().parse_args([*argv, "--precision", "fp16"]))
