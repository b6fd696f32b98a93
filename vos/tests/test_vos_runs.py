"""Several runs propagated together (``--run IN --out OUT`` repeated): each output run folder is
the one its run alone gives, byte for byte (run.json included), a resume writes a video only where
it is missing, and each frame is encoded once per pass for the expressions of every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from vos_testlib import Setup, clip_length, make_setup, write_input_run

from rvos_core.runfolder import Run
from rvos_vos import propagate as propagate_module
from rvos_vos.network import PropagationNet
from rvos_vos.propagate import main

FAST = ("--scales", "1.0", "--no-flip")


def runs_of(setup: Setup, root: Path) -> list[Run]:
    """The setup's input run and two more over its split: the key mask moved and the key frames
    changed (run 2: expression '1' not empty, so it is tracked there and copied in run 1)."""
    last = len(setup.dataset.video("v").frames) - 1
    key_mask = setup.trace["key_mask"].numpy().astype(bool)
    others = []
    for k, (shift, keys) in enumerate([(9, (last, 0, 2)), (-13, (1, last // 2, last))]):
        masks, table = {}, {}
        for video in setup.dataset:
            count = len(video.frames)
            masks[video.id], table[video.id] = {}, {}
            for e, exp_id in enumerate(video.exp_ids):
                exp_masks = np.zeros((count, *key_mask.shape), dtype=bool)
                table[video.id][exp_id] = keys[e % len(keys)]
                exp_masks[table[video.id][exp_id]] = np.roll(key_mask, shift * (e + 1), axis=1)
                masks[video.id][exp_id] = exp_masks
        others.append(write_input_run(root / f"in{k + 2}", setup.dataset, masks, table))
    return [setup.run, *others]


def together_argv(setup: Setup, runs: list[Run], outs: list[Path], *extra: str) -> list[str]:
    """The setup's command line for the first run, with a --run/--out pair for every other."""
    return pairs_argv(setup, [run.root for run in runs], outs, *extra)


def pairs_argv(setup: Setup, runs: list[Path], outs: list[Path], *extra: str) -> list[str]:
    """The setup's command line (its run is ``runs[0]``) for the pairs ``runs`` / ``outs``."""
    pairs = [a for run, out in zip(runs[1:], outs[1:], strict=True) for a in
             ("--run", str(run), "--out", str(out))]  # fmt: skip
    return [*setup.argv(outs[0], *FAST, *extra), *pairs]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def alone(setup: Setup, runs: list[Run], root: Path) -> list[Path]:
    """Each run propagated by itself (the single-run command)."""
    outs = [root / f"alone{k}" for k in range(len(runs))]
    for run, out in zip(runs, outs, strict=True):
        argv = setup.argv(out, *FAST)
        argv[argv.index("--run") + 1] = str(run.root)
        assert main(argv) == 0
    return outs


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    last = clip_length("aot") - 1
    keys = {"v": {"0": 0, "1": 1, "2": last}, "w": {"0": last // 2, "1": 0}}
    return make_setup("aot", tmp_path, {"v": 3, "w": 2}, keys)


@pytest.mark.parity
def test_runs_together_equal_each_run_alone(setup: Setup, tmp_path: Path) -> None:
    runs = runs_of(setup, tmp_path)
    expected = alone(setup, runs, tmp_path)
    outs = [tmp_path / f"together{k}" for k in range(len(runs))]
    assert main(together_argv(setup, runs, outs, "--expression-group", "2")) == 0
    for ours, theirs in zip(outs, expected, strict=True):
        assert tree_bytes(ours) == tree_bytes(theirs)  # masks, scores, key frames, run.json
    masks = Run(expected[1]).masks(setup.dataset.video("v"), "0")
    assert masks.any() and not masks.all()  # the propagated masks are not trivially constant


@pytest.mark.parity
def test_resume_writes_a_video_only_where_it_is_missing(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = runs_of(setup, tmp_path)[:2]
    expected = alone(setup, runs, tmp_path)
    outs = [tmp_path / "first", tmp_path / "second"]
    first = setup.argv(outs[0], *FAST, "--shard", "0/2")
    assert main(first) == 0  # video 'v' of the first run only
    capsys.readouterr()
    assert main(together_argv(setup, runs, outs)) == 0
    err = capsys.readouterr().err
    assert f"{outs[0]}: 1 videos written; run complete" in err
    assert f"{outs[1]}: 2 videos written; run complete" in err
    for ours, theirs in zip(outs, expected, strict=True):
        assert tree_bytes(ours) == tree_bytes(theirs)
    assert main(together_argv(setup, runs, outs)) == 0
    assert capsys.readouterr().err.count("nothing to do") == 2


@pytest.mark.parity
def test_each_frame_is_encoded_once_per_video_for_every_run(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = runs_of(setup, tmp_path)
    calls: list[int] = []
    encode = PropagationNet.encode

    def counting(net: PropagationNet, image: torch.Tensor) -> list[torch.Tensor]:
        calls.append(1)
        return encode(net, image)

    monkeypatch.setattr(PropagationNet, "encode", counting)
    outs = [tmp_path / f"together{k}" for k in range(len(runs))]
    assert main(together_argv(setup, runs, outs, "--expression-group", "8")) == 0
    expected = 0
    for video in setup.dataset:
        keys = [
            job_key
            for run in runs
            for exp_id, job_key in _keys(run, video.id).items()
            if run.mask_frame(video, exp_id, job_key).any()
        ]
        count = len(video.frames)
        forward = count - min(keys) if min(keys) < count - 1 else 0
        backward = max(keys) + 1 if max(keys) > 0 else 0
        expected += forward + backward
    assert len(calls) == expected  # one scale, one pass per video


def _keys(run: Run, video_id: str) -> dict[str, int]:
    return {e: v["index_info"]["class_index"] for e, v in run.key_frames()[video_id].items()}


def test_each_run_needs_its_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["aot", "--checkpoint", "c.pth", "--data", str(tmp_path)]
    assert main([*argv, "--run", "a", "--out", "x", "--run", "b"]) == 2
    assert "2 --run but 1 --out" in capsys.readouterr().err


@pytest.mark.parity
@pytest.mark.parametrize("problem", ["missing run", "output twice", "output inside an input"])
def test_a_bad_pair_writes_nothing(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture, problem: str
) -> None:
    runs = [run.root for run in runs_of(setup, tmp_path)[:2]]
    outs = [tmp_path / "first", tmp_path / "second"]
    if problem == "missing run":
        runs[1] = tmp_path / "nowhere"
    elif problem == "output twice":
        outs[1] = outs[0]
    else:
        outs[1] = runs[0] / "inside"
    assert main(pairs_argv(setup, runs, outs)) == 2
    err = capsys.readouterr().err
    named = runs[1] if problem == "missing run" else outs[1]
    assert "Traceback" not in err and str(named) in err
    assert not outs[0].exists() and not (runs[0] / "inside").exists()


@pytest.mark.parity
def test_two_commands_sharing_outputs_in_any_order_finish(setup: Setup, tmp_path: Path) -> None:
    """Two processes over the same two pairs, given in opposite orders (two rules of a group under
    make -j): both finish and each video is written once, as each run alone writes it."""
    runs = runs_of(setup, tmp_path)[:2]
    expected = alone(setup, runs, tmp_path)
    outs = [tmp_path / "first", tmp_path / "second"]
    forward = together_argv(setup, runs, outs)
    reverse = pairs_argv(setup, [runs[1].root, runs[0].root], outs[::-1])
    reverse[reverse.index("--run") + 1] = str(runs[1].root)
    command = [sys.executable, "-m", "rvos_vos.propagate"]
    processes = [subprocess.Popen([*command, *argv]) for argv in (forward, reverse)]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    for ours, theirs in zip(outs, expected, strict=True):
        assert tree_bytes(ours) == tree_bytes(theirs)


@pytest.mark.parity
def test_a_failed_video_is_committed_in_no_output(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in the middle of a video's joint propagation: no output has that video (nothing
    staged is left), the videos committed before it stay, and the next command completes both."""
    runs = runs_of(setup, tmp_path)[:2]
    expected = alone(setup, runs, tmp_path)
    outs = [tmp_path / "first", tmp_path / "second"]
    original = propagate_module.lockstep
    videos: list[int] = []

    def failing(tracks: list, frames: object, count: int) -> object:
        videos.append(count)
        for step, item in enumerate(original(tracks, frames, count)):
            if step == 3 and len(videos) == 2:  # the second video, 'w', in the middle
                raise RuntimeError("killed")
            yield item

    monkeypatch.setattr(propagate_module, "lockstep", failing)
    with pytest.raises(RuntimeError, match="killed"):
        main(together_argv(setup, runs, outs))
    for out in outs:
        assert sorted(p.name for p in (out / ".done").iterdir()) == ["v"]
        assert not (out / "Annotations" / "w").exists() and not any((out / ".staging").iterdir())
    monkeypatch.setattr(propagate_module, "lockstep", original)
    assert main(together_argv(setup, runs, outs)) == 0
    for ours, theirs in zip(outs, expected, strict=True):
        assert tree_bytes(ours) == tree_bytes(theirs)
