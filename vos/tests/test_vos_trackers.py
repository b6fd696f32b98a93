"""The library trackers as propagators (sam2, sam3_tracker, edgetam): the calls the procedure makes
(a fake model), the state pruning (same probabilities as an unpruned session), the command on run
folders with tiny random models (shapes, domains, copies, scores), shards and resume, and bad
weights folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import Sam3VideoModel
from vos_testlib import write_input_run

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError
from rvos_core.runfolder import Run
from rvos_core.synthetic import VideoSpec, expression_masks, write_refytvos
from rvos_nn.hf_video import sam3_video_config
from rvos_vos.propagate import main
from rvos_vos.propagate_trackers import _parser, settings_from_args
from rvos_vos.trackers import EDGETAM, SAM2, SAM3_TRACKER, TrackerFamily
from rvos_vos.tracking import KeyGroup, VideoTracker, track

FAMILIES = {family.name: family for family in (SAM2, SAM3_TRACKER, EDGETAM)}
SPECS = [VideoSpec("a", 3, 6, (24, 32)), VideoSpec("b", 2, 5, (20, 28))]
# a/1 gets an empty key mask (copied from the input run); b/0 propagates forward only, a/2
# backward only; a/0 and a/1 share a key frame (one session, two objects).
KEYS = {"a": {"0": 2, "1": 2, "2": 5}, "b": {"0": 0, "1": 3}}


class FakeTracker:
    """A stand-in model that records each call as the procedure makes it: the session, frame,
    direction, the objects with new mask inputs (and their frames), the streamed frame's shape."""

    def __init__(self, side: int = 16) -> None:
        self.config = SimpleNamespace(
            image_size=side, num_maskmem=2, max_object_pointers_in_encoder=2
        )
        self.calls: list[tuple[Any, int, bool, dict[int, list[int]], tuple[int, ...]]] = []

    def __call__(self, inference_session: Any, frame_idx: int, frame: torch.Tensor, reverse: bool):
        session = inference_session
        session.add_new_frame(frame, frame_idx)  # as the library's forward does with frame=
        new = {
            obj: sorted(session.mask_inputs_per_obj[session.obj_id_to_idx(obj)])
            for obj in session.obj_with_new_inputs
        }
        session.obj_with_new_inputs = []
        self.calls.append((session, frame_idx, reverse, new, tuple(frame.shape)))
        return SimpleNamespace(pred_masks=torch.zeros(session.get_obj_num(), 1, 4, 4))


def test_the_procedure_calls_the_library_in_order() -> None:
    """Keys 2 (two objects) and 4 (one) over 6 frames: key masks added at k, then forward from
    the smallest key, then backward (reverse=True) from the largest, each frame read once per pass."""
    model = FakeTracker()
    cpu = torch.device("cpu")
    tracker = VideoTracker(model, SAM2, (8, 10), flip=False, device=cpu, state_device=cpu)
    masks = torch.zeros(3, 8, 10, dtype=torch.bool)
    masks[:, 2:5, 3:7] = True
    groups = [KeyGroup(2, masks[:2]), KeyGroup(4, masks[2:])]
    read: list[int] = []

    def frames(t: int) -> list[torch.Tensor]:
        read.append(t)
        return tracker.pixels(torch.full((8, 10, 3), float(t)))

    yielded = [(g, t, tuple(p.shape)) for g, t, p in track(tracker, groups, frames, 6)]
    a, b = (group.sessions[0] for group in groups)
    label = {id(a): "a", id(b): "b"}
    calls = [(label[id(s)], t, rev, new) for s, t, rev, new, _ in model.calls]
    assert calls == [
        ("a", 2, False, {0: [2], 1: [2]}),
        ("a", 3, False, {}),
        ("b", 4, False, {0: [4]}),
        ("a", 4, False, {}),
        ("a", 5, False, {}),
        ("b", 5, False, {}),
        ("b", 3, True, {}),
        ("b", 2, True, {}),
        ("a", 1, True, {}),
        ("b", 1, True, {}),
        ("a", 0, True, {}),
        ("b", 0, True, {}),
    ]
    assert read == [2, 3, 4, 5, 3, 2, 1, 0]
    assert {shape for *_, shape in model.calls} == {(3, 16, 16)}
    assert [(g, t) for g, t, _ in yielded] == [(0, 3), (0, 4), (0, 5), (1, 5), (1, 3), (1, 2),
                                               (0, 1), (1, 1), (0, 0), (1, 0)]  # fmt: skip
    assert {shape for *_, shape in yielded} == {(2, 8, 10), (1, 8, 10)}
    assert a.cache is b.cache  # one vision-feature cache per view: a frame is encoded once
    assert not a.processed_frames and not b.processed_frames  # streamed frames are dropped


def test_flip_tracks_the_mirror_image_with_mirrored_masks() -> None:
    model = FakeTracker()
    cpu = torch.device("cpu")
    tracker = VideoTracker(model, SAM2, (8, 10), flip=True, device=cpu, state_device=cpu)
    mask = torch.zeros(1, 8, 10, dtype=torch.bool)
    mask[0, :, :3] = True
    group = KeyGroup(1, mask)
    list(track(tracker, [group], lambda t: tracker.pixels(torch.rand(8, 10, 3) * 255), 3))
    plain, mirrored = (s.mask_inputs_per_obj[0][1][0, 0] for s in group.sessions)
    assert torch.equal(mirrored, plain.flip(-1)) and plain[:, 0].all() and not plain[:, -1].any()
    assert plain.shape == (16, 16)
    assert group.sessions[0].cache is not group.sessions[1].cache  # a cache per view


def tiny_sam2(memory: int, pointers: int) -> torch.nn.Module:
    config = SAM2.variants["tiny"]()
    config.num_maskmem, config.max_object_pointers_in_encoder = memory, pointers
    torch.manual_seed(0)
    return SAM2.weights.model_class(config).eval()


def test_pruning_keeps_every_result_and_bounds_the_state() -> None:
    """With a reach of 4 frames (3 memories, 4 pointers) a pruned session gives the probabilities
    of a session that keeps everything, bit for bit, and holds at most 2 x reach + 1 outputs."""
    model = tiny_sam2(3, 4)
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.uniform(0, 255, (12, 24, 32, 3)).astype(np.float32))
    mask = torch.zeros(1, 24, 32, dtype=torch.bool)
    mask[0, 5:15, 8:20] = True
    cpu = torch.device("cpu")
    results = []
    for reach in (4, 100):
        tracker = VideoTracker(model, SAM2, (24, 32), flip=False, device=cpu, state_device=cpu)
        assert tracker.reach == 4
        tracker.reach = reach
        group = KeyGroup(5, mask)
        frames = [tracker.pixels(image) for image in video]
        with torch.inference_mode():
            results.append({t: p for _, t, p in track(tracker, [group], frames.__getitem__, 12)})
        stored = group.sessions[0].output_dict_per_obj[0]["non_cond_frame_outputs"]
        assert len(stored) <= 2 * reach + 1
    assert sorted(results[0]) == [t for t in range(12) if t != 5]
    assert all(torch.equal(results[0][t], results[1][t]) for t in results[0])


# ---------------------------------------------------------------------------------------------
# The command


def write_setup(root: Path) -> tuple[Dataset, Run]:
    """Two synthetic videos and an input run with the key frames of KEYS (a/1: empty key)."""
    write_refytvos(root / "data", "valid", SPECS)
    dataset = open_dataset("refytvos", root / "data", "valid")
    masks = {spec.id: expression_masks(spec) for spec in SPECS}
    masks["a"]["1"] = masks["a"]["1"].copy()
    masks["a"]["1"][KEYS["a"]["1"]] = False
    return dataset, write_input_run(root / "in", dataset, masks, KEYS)


def weights(family: TrackerFamily, folder: Path) -> Path:
    torch.manual_seed(0)
    family.random_model("tiny").save_pretrained(folder)
    return folder


def argv(family: str, root: Path, out: Path, *extra: str) -> list[str]:
    return [
        family, "--checkpoint", str(root / family), "--run", str(root / "in"), "--out", str(out),
        "--data", str(root / "data"), "--dataset", "refytvos", "--split", "valid", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_command_writes_a_complete_run(name: str, tmp_path: Path) -> None:
    dataset, run = write_setup(tmp_path)
    weights(FAMILIES[name], tmp_path / name)
    out = tmp_path / "out"
    assert main(argv(name, tmp_path, out)) == 0
    result = Run(out)
    for video in dataset:
        for exp_id in video.exp_ids:
            masks = result.masks(video, exp_id)
            assert masks.shape == (len(video.frames), *video.checked_frame_size())
            key = KEYS[video.id][exp_id]
            frames = range(len(video.frames)) if (video.id, exp_id) == ("a", "1") else [key]
            for t in frames:  # key masks, and the empty-key expression, copied byte for byte
                source = run.mask_path(video.id, exp_id, video.frames[t]).read_bytes()
                assert result.mask_path(video.id, exp_id, video.frames[t]).read_bytes() == source
        assert result.scores(video) == run.scores(video)
    assert result.key_frames() == run.key_frames()
    meta = json.loads((out / "run.json").read_text())
    assert meta["producer"] == f"rvos_vos.propagate {name}"
    assert meta["config"]["propagator"] == name
    assert [f["file"] for f in meta["checkpoint"]["files"]] == ["config.json", "model.safetensors"]
    assert meta["counts"]["masks"] == sum(len(v.frames) * len(v.exp_ids) for v in dataset)


def test_settings_of_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights folder defaults to CHECKPOINTS/<the family's folder>; precision follows the
    drivers' rule (bf16 on the CPU, fp16 and its alias amp need CUDA)."""
    monkeypatch.setenv("CHECKPOINTS", str(tmp_path))
    base = ["sam2", "--run", "r", "--out", "o"]
    settings = settings_from_args(SAM2, _parser(SAM2).parse_args([*base, "--precision", "bf16"]))
    assert settings.checkpoint == tmp_path / "sam2.1-hiera-large"
    assert (settings.precision, settings.flip, settings.offload_state) == ("bf16", False, False)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda"):
            settings_from_args(SAM2, _parser(SAM2).parse_args([*base, "--precision", "amp"]))


def tree_bytes(root: Path) -> dict[str, bytes]:
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "run.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_shards_and_resume_give_the_same_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_setup(tmp_path)
    weights(SAM2, tmp_path / "sam2")
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert main(argv("sam2", tmp_path, whole, "--flip")) == 0
    assert main(argv("sam2", tmp_path, sharded, "--flip", "--shard", "1/2")) == 0
    assert not (sharded / "run.json").exists()
    assert main(argv("sam2", tmp_path, sharded, "--shard", "0/2")) == 2  # other settings
    assert "other settings" in capsys.readouterr().err
    assert main(argv("sam2", tmp_path, sharded, "--flip")) == 0
    assert "1 videos written; run complete" in capsys.readouterr().err
    assert tree_bytes(sharded) == tree_bytes(whole)
    assert main(argv("sam2", tmp_path, sharded, "--flip")) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_sam3_tracker_reads_the_sam3_folder(tmp_path: Path) -> None:
    """facebook/sam3 holds the whole SAM 3 (detector + tracker): the tracker loads its part, the
    encoder from the detector's, the neck from ``tracker_neck``, the rest from ``tracker_model``."""
    torch.manual_seed(0)
    whole = Sam3VideoModel(sam3_video_config(56, 2, 128, queries=2))
    whole.save_pretrained(tmp_path)
    stored = whole.state_dict()
    tracker = SAM3_TRACKER.weights.load(tmp_path).state_dict()
    for key, value in tracker.items():
        assert torch.equal(value, stored[sam3_source(key, stored)]), key


def sam3_source(key: str, stored: dict[str, torch.Tensor]) -> str:
    """The key of a SAM 3 state dict that the tracker's ``key`` is loaded from."""
    if f"tracker_model.{key}" in stored:
        return f"tracker_model.{key}"
    if key.startswith("vision_encoder.neck"):
        return key.replace("vision_encoder.neck", "tracker_neck")
    return f"detector_model.{key}"


def break_config(folder: Path) -> Path:
    weights(SAM2, folder)
    (folder / "config.json").write_text("{not json")
    return folder / "config.json"


def other_model(folder: Path) -> Path:
    weights(EDGETAM, folder)
    return folder / "config.json"


def missing_weights(folder: Path) -> Path:
    weights(SAM2, folder)
    (folder / "model.safetensors").unlink()
    return folder


def other_shapes(folder: Path) -> Path:
    weights(SAM2, folder)
    config = json.loads((folder / "config.json").read_text())
    config["memory_fuser_intermediate_dim"] *= 2
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda folder: folder, "weights folder is missing"),
        (missing_weights, "no weights file"),
        (break_config, "not valid JSON"),
        (other_model, "holds a 'edgetam_video' model, not SAM 2.1"),
        (other_shapes, "of another shape (first: memory_encoder.memory_fuser"),
    ],
)
def test_bad_weights_folder(
    spoil: Any, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_setup(tmp_path)
    named = spoil(tmp_path / "sam2")
    capsys.readouterr()  # what saving the weights printed
    out = tmp_path / "out"
    assert main(argv("sam2", tmp_path, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(named) in err and message in err
    assert not out.exists()


def test_missing_weights_folder_as_a_command(tmp_path: Path) -> None:
    """The command line: status 2, one line naming the folder and the files, no traceback."""
    write_setup(tmp_path)
    command = [
        sys.executable,
        "-m",
        "rvos_vos.propagate",
        *argv("sam3_tracker", tmp_path, tmp_path / "out"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{tmp_path / 'sam3_tracker'}: weights folder is missing" in done.stderr
    assert "config.json and model.safetensors" in done.stderr and "facebook/sam3" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_real_size_on_gpu(name: str) -> None:
    """The library's default (real-size) configuration with random weights on a 720p clip, two
    key groups, bf16: finite probabilities, and a peak memory that does not grow with the video
    (the pruned state): 48 frames peak within 5 % of 24 frames."""
    family, device = FAMILIES[name], torch.device("cuda")
    torch.manual_seed(0)
    model = family.random_model("full").to(device)
    mask = torch.zeros(2, 720, 1280, dtype=torch.bool)
    mask[:, 200:500, 300:700] = True
    peaks = {}
    for count in (24, 48):
        torch.cuda.reset_peak_memory_stats()
        tracker = VideoTracker(
            model, family, (720, 1280), flip=False, device=device, state_device=device
        )
        groups = [KeyGroup(count // 3, mask[:1]), KeyGroup(count // 2, mask[1:])]
        frames = [tracker.pixels(torch.rand(720, 1280, 3) * 255)] * count
        start = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start[0].record()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _, _, probs in track(tracker, groups, frames.__getitem__, count):
                assert torch.isfinite(probs).all() and probs.shape[1:] == (720, 1280)
        start[1].record()
        torch.cuda.synchronize()
        peaks[count] = torch.cuda.max_memory_allocated() / 2**30
        seconds = start[0].elapsed_time(start[1]) / 1000 / (2 * (count - 1))
        print(
            f"{name}: {count} frames, {seconds:.4f} s per object-frame, peak {peaks[count]:.2f} GiB"
        )
    assert peaks[48] < peaks[24] * 1.05
