"""make segment's pieces that need no model: a clip written with PyAV through decoding and the
dataset layout, the checkpoint look-up and its zoo fallback, and the errors of bad input (the
whole command with a model: tests/test_segment.py)."""

from __future__ import annotations

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
    ],
)
def test_bad_input_stops_the_command_with_one_error_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv, named
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 3, 30)
    (tmp_path / "garbage.mp4").write_text("hello")
    paths = {
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "garbage.mp4"]


TABLE = {
    "soc": ("model soc", "soc.tar"),
    "mutr": ("model mutr", "mutr.pth"),
    "aot": ("propagator aot", "aot.pth"),
}


def test_a_missing_checkpoint_is_named_with_where_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "soc.tar").write_bytes(b"w")
    with pytest.raises(ConfigError) as caught:
        segment.find_weights(TABLE, tmp_path, None, ["soc", "mutr"])
    message = str(caught.value)
    assert f"{tmp_path / 'mutr.pth'} (model mutr)" in message
    assert f"{tmp_path / 'aot.pth'} (propagator aot)" in message
    assert "soc.tar" not in message and "Checkpoints and tokenizers" in message


def test_the_zoo_stands_in_for_a_missing_model_checkpoint_loudly(tmp_path: Path) -> None:
    checkpoints, zoo = tmp_path / "checkpoints", tmp_path / "zoo"
    for folder, name in ((checkpoints, "soc.tar"), (checkpoints, "aot.pth"), (zoo, "mutr.pth")):
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"w")
    weights = segment.find_weights(TABLE, checkpoints, zoo, ["soc", "mutr"])
    assert weights["mutr"] == segment.Weights("model mutr", zoo / "mutr.pth", zoo=True)
    assert not weights["soc"].zoo and weights["aot"].path == checkpoints / "aot.pth"
    banner = segment.zoo_banner(weights)
    assert banner is not None and "NOT those of" in banner and str(zoo / "mutr.pth") in banner
    assert segment.zoo_banner({"soc": weights["soc"]}) is None
    recipe = load_recipe("lsvos2023")
    assert segment.make_variables(recipe, weights) == [
        f"MUTR_OPTS=--checkpoint {zoo / 'mutr.pth'} --variant tiny --option short_side=360"
    ]
    (zoo / "mutr.pth").unlink()
    (zoo / "aot.pth").write_bytes(b"w")  # the zoo holds model weights only
    (checkpoints / "aot.pth").unlink()
    with pytest.raises(ConfigError, match=r"aot.pth \(propagator aot\).*the zoo"):
        segment.find_weights(TABLE, checkpoints, zoo, ["soc", "mutr"])


def test_one_model_recipe_keeps_the_models_options_and_environment(tmp_path: Path) -> None:
    mutr = load_recipe(str(segment.one_model_recipe("mutr", tmp_path)))
    assert mutr.submission == "mutr" and mutr.node("mutr").options == {"short_side": "360"}
    vith = load_recipe(str(segment.one_model_recipe("uninext_vith", tmp_path)))
    assert vith.node("uninext_vith").environment == "uninext"
    other = load_recipe(str(segment.one_model_recipe("double", tmp_path)))
    assert [n.name for n in other.nodes] == ["double"]
