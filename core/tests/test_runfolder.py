from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from core_testlib import META, result_for, tree_digest, write_all

from rvos_core.data import Dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import encode_mask_png
from rvos_core.runfolder import Run, RunWriter, key_frame_index
from rvos_core.shard import parse_shard, select_shard


def test_layout_and_round_trip(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "run", small_dataset)
    run = Run(tmp_path / "run")
    video = small_dataset.video("vid_a")
    expected = result_for(video)
    assert (tmp_path / "run" / "Annotations" / "vid_a" / "2" / "00015.png").is_file()
    for exp_id in video.exp_ids:
        assert np.array_equal(run.masks(video, exp_id), expected.masks[exp_id])
        assert np.array_equal(run.probs(video, exp_id), expected.probs[exp_id])
    assert run.scores(video) == expected.scores
    key_frames = run.key_frames()
    assert key_frames["vid_a"]["1"] == {
        "index_info": {"class_index": int(np.argmax(expected.scores["1"]))}
    }
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["counts"] == {"videos": 3, "expressions": 6, "masks": 3 * 4 + 2 * 3 + 1 * 5}
    assert (
        not (tmp_path / "run" / ".done").exists()
        and not (tmp_path / "run" / ".pending.json").exists()
    )


def test_key_frame_ties_go_to_the_earliest_frame() -> None:
    assert key_frame_index([0.1, 0.7, 0.3, 0.7]) == 1
    assert key_frame_index([0.5]) == 0


def test_resume_gives_identical_bytes(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "full", small_dataset)
    writer = RunWriter(tmp_path / "resumed", small_dataset, META)
    writer.write_video(small_dataset.video("vid_b"), result_for(small_dataset.video("vid_b")))
    # a crash in the middle of vid_c leaves staging debris and no marker
    stale = tmp_path / "resumed" / ".staging" / "vid_c.999" / "Annotations" / "0"
    stale.mkdir(parents=True)
    (stale / "00000.png").write_bytes(b"junk")
    assert not writer.finalize()
    with pytest.raises(InputError, match="incomplete"):
        Run(tmp_path / "resumed")
    write_all(tmp_path / "resumed", small_dataset)
    assert tree_digest(tmp_path / "resumed") == tree_digest(tmp_path / "full")


def test_resume_with_other_settings_is_refused(tmp_path: Path, small_dataset: Dataset) -> None:
    RunWriter(tmp_path / "run", small_dataset, META)
    with pytest.raises(ConfigError, match="other settings"):
        RunWriter(tmp_path / "run", small_dataset, {**META, "config": {"x": 1}})


def test_shards_compose_to_the_same_run(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "full", small_dataset)
    for index in range(2):
        write_all(
            tmp_path / "sharded",
            small_dataset,
            select_shard(list(small_dataset.videos), (index, 2)),
        )
    assert tree_digest(tmp_path / "sharded") == tree_digest(tmp_path / "full")


def test_shard_parsing() -> None:
    assert parse_shard("1/3") == (1, 3)
    assert select_shard(["c", "a", "b", "d"], (1, 2)) == ["b", "d"]
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_incomplete_video_result_is_refused(tmp_path: Path, small_dataset: Dataset) -> None:
    writer = RunWriter(tmp_path / "run", small_dataset, META)
    video = small_dataset.video("vid_a")
    partial = result_for(video)
    del partial.masks["1"]
    with pytest.raises(ValueError, match="no masks for expression 1"):
        writer.write_video(video, partial)
    assert not writer.is_done("vid_a")
    assert not (tmp_path / "run" / "Annotations" / "vid_a").exists()


def test_reading_a_damaged_run_names_the_file(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "run", small_dataset)
    run = Run(tmp_path / "run")
    video = small_dataset.video("vid_a")
    (tmp_path / "run" / "Annotations" / "vid_a" / "0" / "00005.png").unlink()
    with pytest.raises(InputError, match=r"vid_a/0/00005.png: mask PNG is missing"):
        run.masks(video, "0")
    (tmp_path / "run" / "scores" / "vid_a.json").write_text(json.dumps({"0": [1.0]}))
    with pytest.raises(InputError, match="expected 4 scores"):
        run.scores(video)


def test_a_wrong_first_mask_is_blamed_not_the_next(tmp_path: Path, small_dataset: Dataset) -> None:
    """The expected size is the video's frame size, not the size of the first mask read."""
    write_all(tmp_path / "run", small_dataset)
    run = Run(tmp_path / "run")
    video = small_dataset.video("vid_a")
    wrong = run.mask_path("vid_a", "0", video.frames[0])
    wrong.write_bytes(encode_mask_png(np.ones((5, 5), bool)))
    with pytest.raises(InputError, match="mask is 5x5, expected 24x32") as info:
        run.masks(video, "0")
    assert info.value.path == wrong


def test_run_of_another_split_is_refused(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "run", small_dataset)
    other = Dataset(
        "refytvos",
        "test",
        small_dataset.root,
        small_dataset.meta_path,
        small_dataset.videos,
        "pairs",
    )
    with pytest.raises(InputError, match="not refytvos/test"):
        Run(tmp_path / "run").check_dataset(other)
