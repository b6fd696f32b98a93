"""make segment's pieces that need no model: a clip written with PyAV through decoding and the
dataset layout, the checkpoint look-up and its zoo fallback, and the errors of bad input (the
whole command with a model: tests/test_segment.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_core.data import open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.recipe import load_recipe
from rvos_report import segment
from rvos_report.mp4 import decode_video, write_mp4


def clip_frames(count: int) -> list[np.ndarray]:
    """uint8 [48, 64, 3] frames: frame t is grey level 20 t (a value to tell frames apart)."""
    return [np.full((48, 64, 3), 20 * t, np.uint8) for t in range(count)]


def write_clip(path: Path, count: int, fps: float) -> Path:
    write_mp4(path, clip_frames(count), fps)
    return path


def test_a_clip_becomes_a_one_video_refytvos_split(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "my clip.mp4", 12, 30)
    fps = segment.write_dataset(clip, ["the dog", "the cat's tail"], tmp_path / "data", False)
    dataset = open_dataset("refytvos", tmp_path / "data", "valid")
    video = dataset.video("my_clip")
    assert fps == 6 and video.frames == ("00000", "00005", "00010")
    assert [e.text for e in video.expressions] == ["the dog", "the cat's tail"]
    grey = [np.asarray(Image.open(video.frame_path(f))).mean() for f in video.frames]
    assert np.allclose(grey, [0, 100, 200], atol=4)  # frames 0, 5 and 10 of the clip


def test_every_frame_and_any_frame_rate(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 7, 25)
    fps = segment.write_dataset(clip, ["x"], tmp_path / "all", True)
    video = open_dataset("refytvos", tmp_path / "all", "valid").video("c")
    assert fps == 25 and len(video.frames) == 7 and video.frames[-1] == "00006"
    assert segment.frame_step(25, False) == 4 and segment.frame_step(60, False) == 10
    assert segment.frame_step(None, False) == 5 and segment.frame_step(30, True) == 1


def test_the_written_video_decodes_to_its_frames(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", 5, 6)
    decoded = list(decode_video(clip))
    assert [f.index for f in decoded] == [0, 1, 2, 3, 4]
    assert np.allclose([f.rgb.mean() for f in decoded], [0, 20, 40, 60, 80], atol=3)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "video file does not exist"), (b"not a video", "not a readable video")],
)
def test_an_unreadable_clip_is_an_error_naming_it(tmp_path: Path, content, problem) -> None:
    clip = tmp_path / "clip.mp4"
    if content is not None:
        clip.write_bytes(content)
    with pytest.raises(InputError, match=problem) as caught:
        list(decode_video(clip))
    assert caught.value.path == clip


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["{clip}", "--text", " ", "--out", "{out}"], "--text: empty value"),
        (["{garbage}", "--text", "a dog", "--out", "{out}"], "garbage.mp4: not a readable video"),
        (
            ["{clip}", "--text", "a dog", "--out", "{out}", "--zoo", "{nowhere}"],
            "nowhere: --zoo is not a folder",
        ),
        (
            ["{clip}", "--text", "a dog", "--out", "{out}", "--zoo", "{empty}"],
            "manifest.json: the zoo has no manifest",
        ),
    ],
)
def test_bad_input_stops_the_command_with_one_error_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv, named
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 3, 30)
    (tmp_path / "garbage.mp4").write_text("hello")
    (tmp_path / "empty").mkdir()
    paths = {
        "empty": tmp_path / "empty",
        "clip": clip,
        "garbage": tmp_path / "garbage.mp4",
        "out": tmp_path / "out",
        "nowhere": tmp_path / "nowhere",
    }
    try:
        status = segment.main([a.format(**paths) for a in argv])
    except SystemExit as exc:  # a usage error
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "empty", "garbage.mp4"]


TABLE = {
    "soc": segment.Need("model", "soc", "soc.tar"),
    "referformer_ft": segment.Need("model", "referformer", "referformer.pth"),
    "mutr": segment.Need("model", "mutr", "mutr.pth"),
    "aot": segment.Need("propagator", "aot", "aot.pth"),
    "deaot": segment.Need("propagator", "deaot", "deaot.pth"),
}


def write_zoo(folder: Path, entries: dict[str, str], files: tuple[str, ...] | None = None) -> Path:
    """A zoo folder: a manifest of ``entries`` (name -> kind) and the weights files ``files``
    (default: every entry's)."""
    folder.mkdir()
    manifest = {
        name: {"kind": kind, "file": f"{name}.safetensors", "sha256": "0", "variant": "tiny"}
        for name, kind in entries.items()
    }
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "entries": manifest}))
    for name in entries if files is None else files:
        (folder / f"{name}.safetensors").write_bytes(b"w")
    return folder


def write_checkpoints(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"w")
    return folder


ALL_NETWORKS = {
    "soc": "model",
    "mutr": "model",
    "referformer": "model",
    "aot": "propagator",
    "deaot": "propagator",
}


def test_a_missing_checkpoint_is_named_with_where_to_get_it(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "referformer.pth", "deaot.pth")
    with pytest.raises(ConfigError) as caught:
        segment.find_weights(TABLE, checkpoints, None)
    message = str(caught.value)
    assert f"{checkpoints / 'mutr.pth'} (model mutr)" in message
    assert f"{checkpoints / 'aot.pth'} (propagator aot)" in message
    assert "soc.tar" not in message and "Checkpoints and tokenizers" in message
    assert "zoo" not in message


def test_the_zoo_stands_in_for_a_missing_model_by_its_producer_loudly(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "mutr.pth", "aot.pth", "deaot.pth")
    zoo = segment.read_zoo(write_zoo(tmp_path / "zoo", ALL_NETWORKS))
    weights = segment.find_weights(TABLE, checkpoints, zoo)
    stand_in = zoo.folder / "referformer.safetensors"
    assert weights["referformer_ft"] == segment.Weights("model referformer", stand_in, zoo.folder)
    assert [n for n, w in weights.items() if w.zoo is not None] == ["referformer_ft"]
    assert weights["aot"].path == checkpoints / "aot.pth"  # the propagators stay as they are
    banner = segment.zoo_banner(weights)
    assert banner is not None and "NOT those of" in banner
    assert f"model referformer: {stand_in}" in banner and "model soc" not in banner
    assert segment.zoo_banner({"soc": weights["soc"]}) is None
    recipe = load_recipe("lsvos2023")
    assert segment.make_variables(recipe, weights) == [f"REFERFORMER_OPTS=--zoo {zoo.folder}"]


def test_a_zoo_model_runs_without_the_nodes_options(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "referformer.pth", "aot.pth")
    (checkpoints / "deaot.pth").write_bytes(b"w")
    zoo = segment.read_zoo(write_zoo(tmp_path / "zoo", {"mutr": "model"}))
    weights = segment.find_weights(TABLE, checkpoints, zoo)
    recipe = load_recipe("lsvos2023")
    assert recipe.node("mutr").options == {"short_side": "360"}  # the released weights' size
    assert segment.make_variables(recipe, weights) == [f"MUTR_OPTS=--zoo {zoo.folder}"]


def test_a_missing_propagator_takes_every_propagator_from_the_zoo(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "referformer.pth", "mutr.pth")
    (checkpoints / "aot.pth").write_bytes(b"w")  # deaot missing: aot comes from the zoo too
    zoo = segment.read_zoo(write_zoo(tmp_path / "zoo", ALL_NETWORKS))
    weights = segment.find_weights(TABLE, checkpoints, zoo)
    assert weights["aot"] == segment.Weights(
        "propagator aot", zoo.folder / "aot.safetensors", zoo.folder
    )
    assert weights["deaot"].path == zoo.folder / "deaot.safetensors"
    assert all(weights[m].zoo is None for m in ("soc", "referformer_ft", "mutr"))
    recipe = load_recipe("lsvos2023")
    assert segment.make_variables(recipe, weights) == [f"PROPAGATE_OPTS=--zoo {zoo.folder}"]


def test_a_zoo_without_every_propagator_leaves_the_missing_one_an_error(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "referformer.pth", "mutr.pth")
    (checkpoints / "aot.pth").write_bytes(b"w")
    zoo = segment.read_zoo(write_zoo(tmp_path / "zoo", {"deaot": "propagator", "aot": "model"}))
    with pytest.raises(ConfigError) as caught:
        segment.find_weights(TABLE, checkpoints, zoo)
    message = str(caught.value)
    assert f"{checkpoints / 'deaot.pth'} (propagator deaot)" in message
    assert f"the zoo {zoo.folder} does not stand in" in message and "(aot, deaot)" in message
    assert "aot.pth (propagator aot)" not in message


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (None, "manifest.json: the zoo has no manifest"),
        ("{not json", "manifest.json: unreadable zoo manifest"),
        ('{"version": 2, "entries": {}}', "manifest.json: not a zoo manifest of version 1"),
        ('{"version": 1, "entries": {"soc": {"kind": "model"}}}', "entry 'soc' needs a 'kind'"),
        (
            '{"version": 1, "entries": {"soc": {"kind": "model", "file": "../soc.safetensors"}}}',
            "entry 'soc' needs a 'kind' and a 'file' named in the folder",
        ),
    ],
)
def test_a_bad_manifest_is_an_input_error_naming_it(
    tmp_path: Path, manifest: str | None, problem: str
) -> None:
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(InputError, match=problem) as caught:
        segment.read_zoo(tmp_path)
    assert caught.value.path == tmp_path / "manifest.json"


def test_a_zoo_entry_without_its_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    checkpoints = write_checkpoints(tmp_path / "c", "soc.tar", "referformer.pth", "aot.pth")
    (checkpoints / "deaot.pth").write_bytes(b"w")
    zoo = segment.read_zoo(write_zoo(tmp_path / "zoo", {"mutr": "model"}, files=()))
    with pytest.raises(InputError, match="the zoo's weights of model mutr are missing") as caught:
        segment.find_weights(TABLE, checkpoints, zoo)
    assert caught.value.path == zoo.folder / "mutr.safetensors"


def test_one_model_recipe_keeps_the_models_options_and_environment(tmp_path: Path) -> None:
    mutr = load_recipe(str(segment.one_model_recipe("mutr", tmp_path)))
    assert mutr.submission == "mutr" and mutr.node("mutr").options == {"short_side": "360"}
    vith = load_recipe(str(segment.one_model_recipe("uninext_vith", tmp_path)))
    assert vith.node("uninext_vith").environment == "uninext"
    other = load_recipe(str(segment.one_model_recipe("double", tmp_path)))
    assert [n.name for n in other.nodes] == ["double"]
