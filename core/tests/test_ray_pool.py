"""Stages on a local Ray (``EXECUTOR=ray``, rvos_core.ray_pool): the bytes of a local run, a
killed worker survived, a worker that is still writing waited for, a bad video stopping the stage
with its message. Skipped where Ray (an optional extra) is not installed: ``tox -e ray``."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from core_testlib import ConstantStage, tree_digest

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import InputError
from rvos_core.masks import quantize_probs
from rvos_core.runfolder import Run, RunWriter, VideoResult, VideoWriter
from rvos_core.runner import Target, run_stage, video_cost
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.work import Work

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (optional extra env/requirements-ray.txt; tox -e ray)"
)
from rvos_core.ray_pool import longest_first, worker_count  # noqa: E402  (after the skip)

TESTS = Path(__file__).resolve().parent
SPECS = [
    VideoSpec(f"v{i}", expressions=1 + i % 3, frames=3 + (5 * i) % 7, size=(18, 24))
    for i in range(6)
]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for the module; its workers import this folder's modules."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", path)
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024)
        yield
        ray.shutdown()


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    write_refytvos(tmp_path / "data", "valid", SPECS)
    return open_dataset("refytvos", tmp_path / "data", "valid")


@pytest.fixture
def on_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR", "ray")
    monkeypatch.delenv("RAY_WORKERS", raising=False)


@dataclass
class FragileStage(ConstantStage):
    """ConstantStage whose worker kills itself half-way through video ``kill_on`` (the first
    time: ``marker`` is made then), and that raises on video ``fail_on`` (every time)."""

    kill_on: str | None = None
    fail_on: str | None = None
    marker: Path | None = None

    def write_video(self, out: VideoWriter) -> None:
        video = out.video
        if video.id == self.fail_on:
            raise InputError(video.frame_paths()[0], "cannot decode the frame")
        if video.id == self.kill_on and self.marker is not None and not self.marker.exists():
            out.write_mask(video.exp_ids[0], 0, np.zeros(video.frame_size(), bool))
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        super().write_video(out)


def local_digest(tmp_path: Path, dataset: Dataset) -> str:
    out = tmp_path / "local"
    assert run_stage(ConstantStage(), Target(out, dataset))
    return tree_digest(out)


@pytest.mark.usefixtures("on_ray")
def test_a_stage_on_ray_gives_the_bytes_of_a_local_run(
    tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTOR", "local")
    expected = local_digest(tmp_path, dataset)
    monkeypatch.setenv("EXECUTOR", "ray")
    out, stage = tmp_path / "ray", ConstantStage()
    assert run_stage(stage, Target(out, dataset))
    assert tree_digest(out) == expected
    assert stage.calls == ["check"]  # the driver prepares nothing: each worker does


def write_scored_run(root: Path, dataset: Dataset, seed: int) -> Run:
    """A complete run of random masks, scores and probabilities (a model run's layout)."""
    meta = {"producer": "test", "value_domain": "probability", "has_scores": True}
    writer = RunWriter(root, dataset, {**meta, "has_probs": True})
    for video in dataset:
        rng = np.random.default_rng([seed, len(video.frames), len(video.exp_ids)])
        probs = {e: rng.random((len(video.frames), *video.frame_size())) for e in video.exp_ids}
        writer.write_video(
            video,
            VideoResult(
                masks={e: p > 0.5 for e, p in probs.items()},
                scores={e: rng.random(len(video.frames)).tolist() for e in video.exp_ids},
                probs={e: quantize_probs(p) for e, p in probs.items()},
            ),
        )
    assert writer.finalize()
    return Run(root)


@pytest.mark.usefixtures("on_ray")
def test_a_vote_on_ray_gives_the_bytes_of_a_local_vote(
    tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    vote = pytest.importorskip("rvos_fusion.vote", reason="rvos_fusion is not installed")
    runs = [write_scored_run(tmp_path / f"run{i}", dataset, i) for i in range(3)]
    config = vote.VoteConfig(min_votes=3, unpaired=2.0, key_frames_from=0)
    assert vote.run_vote(runs, dataset, config, tmp_path / "ray")
    monkeypatch.setenv("EXECUTOR", "local")
    assert vote.run_vote(runs, dataset, config, tmp_path / "local", workers=2)
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")


@pytest.mark.usefixtures("on_ray")
def test_a_killed_worker_is_survived(
    tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("EXECUTOR", "local")
    expected = local_digest(tmp_path, dataset)
    monkeypatch.setenv("EXECUTOR", "ray")
    marker, out = tmp_path / "killed", tmp_path / "ray"
    assert run_stage(FragileStage(kill_on="v3", marker=marker), Target(out, dataset))
    assert marker.exists()
    assert (
        "video v3: its Ray worker died; the video goes to another worker" in capfd.readouterr().err
    )
    assert tree_digest(out) == expected  # the half-written video left nothing


def hold_video_then_commit(out: Path, data: Path, video_id: str, started: Path) -> None:
    """A writer presumed dead that is still writing: it holds ``video_id``, stages a wrong first
    frame, and only then writes the video as the stage does and commits it."""
    dataset = open_dataset("refytvos", data, "valid")
    writer = RunWriter(out, dataset, ConstantStage().record)
    claimed = writer.claim_video(dataset.video(video_id))
    assert claimed is not None
    with claimed:
        claimed.write_mask(claimed.video.exp_ids[0], 0, np.zeros(claimed.video.frame_size(), bool))
        started.touch()
        time.sleep(3)
        ConstantStage().write_video(claimed)


@pytest.mark.usefixtures("on_ray")
def test_a_retry_waits_for_a_writer_still_at_work(
    tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECUTOR", "local")
    expected = local_digest(tmp_path, dataset)
    monkeypatch.setenv("EXECUTOR", "ray")
    out, started = tmp_path / "ray", tmp_path / "started"
    zombie = multiprocessing.get_context("spawn").Process(
        target=hold_video_then_commit, args=(out, tmp_path / "data", "v3", started)
    )
    zombie.start()
    while not started.exists():
        assert zombie.is_alive()
        time.sleep(0.05)
    assert run_stage(ConstantStage(), Target(out, dataset))
    zombie.join(10)
    assert zombie.exitcode == 0
    assert tree_digest(out) == expected


@pytest.mark.usefixtures("on_ray")
def test_a_bad_video_stops_the_stage_with_its_error(
    tmp_path: Path, dataset: Dataset, capfd: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ray"
    with pytest.raises(InputError, match=r"v2/00000\.jpg: cannot decode the frame"):
        run_stage(FragileStage(fail_on="v2"), Target(out, dataset))
    assert "video v2 failed (" in capfd.readouterr().err  # tried once more first
    assert not (out / "run.json").exists() and not (out / "Annotations" / "v2").exists()


def test_the_command_reports_a_bad_video_in_one_line(tmp_path: Path, dataset: Dataset) -> None:
    """``python -m rvos_fusion vote`` with EXECUTOR=ray on the module's Ray (RAY_ADDRESS), an input
    run missing one mask: one error line naming the file, status 2, no output run."""
    pytest.importorskip("rvos_fusion", reason="rvos_fusion is not installed")
    runs = [write_scored_run(tmp_path / f"run{i}", dataset, i) for i in range(2)]
    missing = runs[1].mask_path("v4", "0", dataset.video("v4").frames[1])
    missing.unlink()
    env = {**os.environ, "EXECUTOR": "ray", "RVOS_PROGRESS": "0"}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "rvos_fusion", "vote", "--out", str(tmp_path / "out")]
    command += ["--data", str(tmp_path / "data"), "--split", "valid"]
    command += ["--min-votes", "2", "--unpaired", "2", *(str(run.root) for run in runs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {missing}: mask PNG is missing"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "run.json").exists()


def test_the_queue_starts_with_the_longest_videos(dataset: Dataset) -> None:
    ids = list(dataset.videos)
    work = Work(lambda: len, ids, "t", cost=lambda v: video_cost(dataset, v))
    order = [ids[i] for i in longest_first(work)]
    costs = [video_cost(dataset, v) for v in order]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]


def test_workers_fit_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    work = Work(lambda: len, ["a", "b", "c"], "t")
    assert worker_count(work, 0.0, {"CPU": 2.0}) == 2
    assert worker_count(work, 0.5, {"CPU": 8.0, "GPU": 4.0}) == 3  # never more than the items
    monkeypatch.setenv("RAY_WORKERS", "1")
    assert worker_count(work, 0.0, {"CPU": 2.0}) == 1
    with pytest.raises(Exception, match="a worker needs 1 GPU and the Ray cluster has 0"):
        worker_count(work, 1.0, {"CPU": 2.0})


def note_pid_then_sleep(marker: str) -> None:
    """A task that writes its process id to ``marker`` and sleeps for a minute."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(60)


def test_ctrl_c_kills_the_workers_and_says_how_to_resume(tmp_path: Path) -> None:
    """SIGINT to a command whose Ray workers are busy: status 130, the resume line, no worker
    left running."""
    markers = [str(tmp_path / name) for name in ("a", "b")]
    body = "lambda argv: map_videos(note_pid_then_sleep, MARKERS, 1, 't') and 0"
    script = "import sys; from rvos_core.command import run_command; "
    script += "from rvos_core.parallel import map_videos; from test_ray_pool import *; "
    script += f"MARKERS = {markers!r}; sys.exit(run_command({body}))"
    env = {**os.environ, "EXECUTOR": "ray", "RVOS_PROGRESS": "0"}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    command = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not all(Path(m).is_file() and Path(m).read_text() for m in markers):
        assert time.monotonic() < deadline and command.poll() is None
        time.sleep(0.1)
    command.send_signal(signal.SIGINT)
    _, err = command.communicate(timeout=30)
    assert command.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted: finished videos are kept")
    time.sleep(2)
    for marker in markers:
        with pytest.raises(ProcessLookupError):
            os.kill(int(Path(marker).read_text()), 0)


def test_a_stage_of_a_module_run_as_a_command(tmp_path: Path, dataset: Dataset) -> None:
    """``python -m MODULE`` (how Make runs the stages) whose stage class, defined in __main__,
    caches a property: on Ray it gives the bytes of a local run."""
    expected = local_digest(tmp_path, dataset)
    env = {**os.environ, "EXECUTOR": "ray", "RVOS_PROGRESS": "0"}
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "ray_cli_stage", str(out), str(tmp_path / "data")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert tree_digest(out) == expected
