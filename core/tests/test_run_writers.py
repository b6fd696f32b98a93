"""Run-folder writers under concurrency, kills and bad requests (rvos_core.runfolder, .atomic)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from core_testlib import META, result_for, tree_digest, write_all

from rvos_core.atomic import write_bytes
from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.runfolder import Run, RunWriter, check_finished
from rvos_core.synthetic import write_refytvos
from rvos_core.testing import run_forked

# Enough races to catch a writer that finalises under another, in a few seconds.
RACES = 10


@pytest.fixture
def expected(tmp_path: Path, small_dataset: Dataset) -> str:
    write_all(tmp_path / "single", small_dataset)
    return tree_digest(tmp_path / "single")


def _fork(call: partial) -> int:
    """Start ``call`` in a forked child (which exits 0 whatever happens); its pid."""
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            call()
        finally:
            os._exit(0)
    return child


def _kill(child: int) -> None:
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)


@pytest.mark.parametrize("shards", [[None, None], [(0, 2), (1, 2)]], ids=["same", "disjoint"])
def test_two_writers_of_one_folder_give_the_single_run(
    tmp_path: Path, small_dataset: Dataset, expected: str, shards: list
) -> None:
    videos = sorted(small_dataset.videos)
    for race in range(RACES):
        out = tmp_path / f"race{race}"
        calls = [
            partial(write_all, out, small_dataset, shard and videos[shard[0] :: shard[1]])
            for shard in shards
        ]
        assert run_forked(*calls) == [0, 0], race
        assert tree_digest(out) == expected, race


def test_a_killed_writer_resumes_to_the_same_bytes(
    tmp_path: Path, small_dataset: Dataset, expected: str
) -> None:
    for k, delay in enumerate(np.linspace(0.0, 0.2, 8)):
        out = tmp_path / f"killed{k}"
        child = _fork(partial(write_all, out, small_dataset))
        time.sleep(float(delay))
        _kill(child)
        if (out / "run.json").is_file():
            assert Run(out).meta["counts"]["videos"] == len(small_dataset)
        write_all(out, small_dataset)
        assert tree_digest(out) == expected, delay


def _claim_and_hold(root: Path, dataset: Dataset, seconds: float) -> None:
    """Claim vid_a, hold it ``seconds``, then give it up unwritten."""
    out = RunWriter(root, dataset, META).claim_video(dataset.video("vid_a"))
    assert out is not None
    time.sleep(seconds)
    out.abort()


def _wait_for_claim(root: Path) -> None:
    while not (root / ".staging" / "vid_a").exists():
        time.sleep(0.01)


def test_a_claim_waits_for_the_writer_of_the_video(tmp_path: Path, small_dataset: Dataset) -> None:
    writer = RunWriter(tmp_path / "run", small_dataset, META)
    child = _fork(partial(_claim_and_hold, tmp_path / "run", small_dataset, 0.5))
    _wait_for_claim(tmp_path / "run")
    start = time.monotonic()
    out = writer.claim_video(small_dataset.video("vid_a"))
    assert out is not None and time.monotonic() - start > 0.2
    out.abort()
    os.waitpid(child, 0)


def test_the_lock_of_a_killed_writer_is_free(tmp_path: Path, small_dataset: Dataset) -> None:
    writer = RunWriter(tmp_path / "run", small_dataset, META)
    child = _fork(partial(_claim_and_hold, tmp_path / "run", small_dataset, 60))
    _wait_for_claim(tmp_path / "run")
    _kill(child)
    out = writer.claim_video(small_dataset.video("vid_a"))
    assert out is not None
    out.abort()


def test_finalize_checks_every_video_on_disk(
    tmp_path: Path, small_dataset: Dataset, expected: str
) -> None:
    out = tmp_path / "run"
    writer = RunWriter(out, small_dataset, META)
    for video in small_dataset:
        writer.write_video(video, result_for(video))
    lost = out / "Annotations" / "vid_b" / "1" / "00005.png"
    lost.unlink()
    with pytest.raises(
        InputError, match="mask PNG is missing, but video vid_b was marked done"
    ) as info:
        writer.finalize()
    assert info.value.path == lost
    assert not (out / "run.json").exists() and not writer.is_done("vid_b")
    write_all(out, small_dataset)
    assert tree_digest(out) == expected


def test_finalize_checks_the_probabilities(tmp_path: Path, small_dataset: Dataset) -> None:
    writer = RunWriter(tmp_path / "run", small_dataset, META)
    for video in small_dataset:
        writer.write_video(video, result_for(video))
    (tmp_path / "run" / "probs" / "vid_c.h5").unlink()
    with pytest.raises(InputError, match="probabilities file is missing"):
        writer.finalize()


def test_a_complete_run_asked_with_other_settings_is_refused(
    tmp_path: Path, small_dataset: Dataset
) -> None:
    write_all(tmp_path / "run", small_dataset)
    before = (tmp_path / "run" / "run.json").read_bytes()
    assert check_finished(tmp_path / "run", small_dataset, META)
    other = {**META, "config": {"min_votes": 4}}
    message = "config.min_votes = null in run.json, 4 in this command"
    with pytest.raises(ConfigError, match="complete with other settings") as info:
        RunWriter(tmp_path / "run", small_dataset, other)
    assert message in str(info.value)
    with pytest.raises(ConfigError, match="complete with other settings"):
        check_finished(tmp_path / "run", small_dataset, other)
    assert (tmp_path / "run" / "run.json").read_bytes() == before


def test_resume_with_other_settings_names_both(tmp_path: Path, small_dataset: Dataset) -> None:
    RunWriter(tmp_path / "run", small_dataset, META)
    with pytest.raises(ConfigError) as info:
        RunWriter(tmp_path / "run", small_dataset, {**META, "has_probs": False})
    assert "has_probs = true in .pending.json, false in this command" in str(info.value)


def _empty_split(root: Path) -> Dataset:
    write_refytvos(root, "valid", [], frames=False)
    return open_dataset("refytvos", root, "valid")


def test_an_empty_split_is_refused(tmp_path: Path) -> None:
    dataset = _empty_split(tmp_path / "data")
    with pytest.raises(InputError, match="refytvos/valid lists no videos") as info:
        RunWriter(tmp_path / "run", dataset, META)
    assert info.value.path == dataset.meta_path
    assert not (tmp_path / "run").exists()


def test_a_run_of_a_changed_meta_is_refused(tmp_path: Path, small_dataset: Dataset) -> None:
    write_all(tmp_path / "run", small_dataset)
    meta = json.loads(small_dataset.meta_path.read_text())
    del meta["videos"]["vid_c"]
    small_dataset.meta_path.write_text(json.dumps(meta))
    changed = open_dataset("refytvos", small_dataset.root.parent, "valid")
    with pytest.raises(InputError, match="the split has changed since") as info:
        Run(tmp_path / "run").check_dataset(changed)
    assert str(changed.meta_path) in str(info.value)
    assert info.value.path == tmp_path / "run" / "run.json"


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_get_the_modes_of_the_umask(
    tmp_path: Path, small_dataset: Dataset, umask: None, mask: int
) -> None:
    os.umask(mask)
    write_all(tmp_path / "run", small_dataset)
    write_bytes(tmp_path / "file.bin", b"x")
    paths = [tmp_path / "file.bin", *(tmp_path / "run").rglob("*")]
    assert {p.suffix for p in paths} >= {".bin", ".json", ".png", ".h5", ""}
    for path in paths:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_stale_temporaries_go_and_live_ones_stay(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    stale = [tmp_path / ".scores.json.k3j_x9q2.tmp", tmp_path / ".scores.json.0a1b2c3d.tmp"]
    for path in stale:
        path.write_bytes(b"killed")
    live = tmp_path / ".scores.json.live0001.tmp"
    other = tmp_path / ".scores.json.x.0a1b2c3d.tmp"  # another target's ("scores.json.x")
    for path in (live, other):
        path.write_bytes(b"")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        write_bytes(target, b"{}")
    finally:
        os.close(holder)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name]
    )
