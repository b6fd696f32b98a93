"""The stage runner (rvos_core.runner) with a trivial stage: the sequence every stage shares."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from core_testlib import META, ConstantStage, result_for, tree_digest, write_all

from rvos_core.data import Dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.runfolder import Run, RunWriter
from rvos_core.runner import Target, run_stage


def test_a_stage_writes_a_complete_run_once(
    tmp_path: Path, small_dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    out, stage = tmp_path / "out", ConstantStage()
    assert run_stage(stage, Target(out, small_dataset))
    assert stage.calls == ["check", f"prepare {len(small_dataset)}"]
    assert f"{out}: {len(small_dataset)} videos written; run complete" in capsys.readouterr().err
    meta = json.loads((out / "run.json").read_text())
    assert {k: meta[k] for k in ("producer", "inputs", "checkpoint", "config")} == {
        "producer": "test.constant",
        "inputs": [],
        "checkpoint": None,
        "config": {"value": True},
    }
    assert {"format", "dataset", "counts", "code_version"} <= set(meta)
    video = small_dataset.video("vid_a")
    assert Run(out).masks(video, video.exp_ids[0]).all()
    again = ConstantStage()
    assert run_stage(again, Target(out, small_dataset))
    assert again.calls == []  # complete: no check, no network to load
    assert "is complete (run.json); nothing to do" in capsys.readouterr().err


def test_shards_and_workers_give_the_bytes_of_one_run(
    tmp_path: Path, small_dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    whole, sharded, pooled = tmp_path / "whole", tmp_path / "sharded", tmp_path / "pooled"
    assert run_stage(ConstantStage(), Target(whole, small_dataset))
    assert not run_stage(ConstantStage(), Target(sharded, small_dataset, shard=(0, 2)))
    assert "other shards still have videos to do" in capsys.readouterr().err
    stage = ConstantStage()
    assert run_stage(stage, Target(sharded, small_dataset, shard=(1, 2)))
    assert run_stage(ConstantStage(), Target(pooled, small_dataset, workers=2))
    assert tree_digest(whole) == tree_digest(sharded)
    assert tree_digest(whole) == tree_digest(pooled)


def test_prepare_only_when_videos_are_left(tmp_path: Path, small_dataset: Dataset) -> None:
    out = tmp_path / "out"
    assert not run_stage(ConstantStage(), Target(out, small_dataset, shard=(0, 2)))
    stage = ConstantStage()
    assert not run_stage(stage, Target(out, small_dataset, shard=(0, 2)))
    assert stage.calls == ["check"]


def test_other_settings_are_refused(tmp_path: Path, small_dataset: Dataset) -> None:
    out = tmp_path / "out"
    assert not run_stage(ConstantStage(), Target(out, small_dataset, shard=(0, 2)))
    with pytest.raises(ConfigError, match=r"started with other settings: config\.value"):
        run_stage(ConstantStage(value=False), Target(out, small_dataset))
    assert run_stage(ConstantStage(), Target(out, small_dataset))
    with pytest.raises(ConfigError, match=r"complete with other settings: config\.value"):
        run_stage(ConstantStage(value=False), Target(out, small_dataset))


def test_refusals_before_anything_is_written(tmp_path: Path, small_dataset: Dataset) -> None:
    source = Run(write_all(tmp_path / "in", small_dataset).root)
    with pytest.raises(ConfigError, match="would be written into input run"):
        run_stage(ConstantStage(source=source), Target(source.root / "sub", small_dataset))
    out, stage = tmp_path / "out", ConstantStage(refuse=True)
    with pytest.raises(InputError, match="refused by the stage"):
        run_stage(stage, Target(out, small_dataset))
    assert stage.calls == ["check"] and not out.exists()
    empty = dataclasses.replace(small_dataset, videos={})
    with pytest.raises(InputError, match="lists no videos"):
        run_stage(ConstantStage(), Target(out, empty))
    assert not out.exists()


def test_key_frames_of_a_stage_without_scores(tmp_path: Path, small_dataset: Dataset) -> None:
    out = tmp_path / "out"
    assert run_stage(ConstantStage(scores=False), Target(out, small_dataset))
    video = small_dataset.video("vid_b")
    assert Run(out).key_frames()["vid_b"][video.exp_ids[-1]] == {"index_info": {"class_index": 0}}


def test_inputs_are_recorded_by_name_so_a_moved_work_folder_matches(
    tmp_path: Path, small_dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    work = tmp_path / "work"
    source = Run(write_all(work / "in", small_dataset).root)
    assert run_stage(ConstantStage(source=source), Target(work / "out", small_dataset))
    inputs = json.loads((work / "out" / "run.json").read_text())["inputs"]
    assert [sorted(i) for i in inputs] == [["producer", "run", "sha256"]]
    assert (inputs[0]["run"], inputs[0]["producer"]) == ("in", "test")
    moved = tmp_path / "moved"
    shutil.move(work, moved)
    capsys.readouterr()
    assert run_stage(ConstantStage(source=Run(moved / "in")), Target(moved / "out", small_dataset))
    assert "nothing to do" in capsys.readouterr().err
    shutil.rmtree(moved / "in")
    writer = RunWriter(moved / "in", small_dataset, {**META, "config": {"other": 1}})
    for video in small_dataset:  # the input made again with other settings
        writer.write_video(video, result_for(video))
    assert writer.finalize()
    with pytest.raises(ConfigError, match=r"inputs\.0\.sha256"):
        run_stage(ConstantStage(source=Run(moved / "in")), Target(moved / "out", small_dataset))
