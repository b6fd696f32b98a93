"""The generated referring-video world: deterministic, readable by core's readers, and its
expressions mean what the frames show (read back with a vocabulary of this test's own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_core.data import open_dataset
from rvos_core.errors import ConfigError
from rvos_core.synthetic import rle_encode
from rvos_core.world import VERSION, Video, draw_video, video_rng
from rvos_core.world.__main__ import main
from rvos_core.world.grammar import object_sentences, referents, vocabulary_phrases
from rvos_core.world.layouts import first_frame_objects, generate
from rvos_core.world.scene import COLOURS, SHAPES, Thing

SIZE, FRAMES = (48, 80), 8
COUNTS = {"train": 5, "valid": 3, "test": 2}
ARGS = ["--videos", "5", "--valid-videos", "3", "--test-videos", "2", "--frames", "8"]

# The words of an expression and what each says (kind, value); the other words say nothing.
WORDS = {
    **{w: ("size", w) for w in ("small", "big")},
    **{w: ("texture", w) for w in ("plain", "striped", "dotted")},
    **{w: ("colour", w) for w in COLOURS},
    **{w: ("shape", w) for w in SHAPES},
    **{("crosses" if w == "cross" else f"{w}s"): ("shape", w) for w in SHAPES},
    **{w: ("direction", w) for w in ("left", "right", "up", "down")},
    "slowly": ("speed", "slow"),
    "fast": ("speed", "fast"),
    "still": ("pattern", "still"),
    **{w: ("pattern", "moves") for w in ("keeps", "keep")},
    **{w: ("pattern", "stops") for w in ("stops", "stop")},
    **{w: ("pattern", "starts") for w in ("starts", "start")},
    **{w: ("presence", "enters") for w in ("enters", "enter")},
    **{w: ("presence", "leaves") for w in ("leaves", "leave")},
}
FILLERS = {"the", "object", "objects", "moving", "moves", "move", "that", "and", "scene", "stays"}
FILLERS |= {"stay"}


def meaning(text: str) -> dict[str, str]:
    """What ``text`` says, word by word; an unknown word fails the test."""
    said = {}
    for word in text.split():
        assert word in WORDS or word in FILLERS, f"unknown word {word!r} in {text!r}"
        if word in WORDS:
            kind, value = WORDS[word]
            said[kind] = value
    return said


def referred(text: str, things: tuple[Thing, ...]) -> tuple[int, ...]:
    return referents(meaning(text), things)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "data"
    assert main(["--out", str(out), "--size", "48x80", *ARGS]) == 0
    return out


@pytest.fixture(scope="module")
def videos() -> dict[str, Video]:
    return {
        f"{split}{i:03d}": draw_video(0, f"{split}{i:03d}", FRAMES, SIZE)
        for split, count in COUNTS.items()
        for i in range(count)
    }


@pytest.fixture(scope="module")
def sample() -> list[Video]:
    """More videos than a layout needs, for the world's statistics."""
    return [draw_video(5, f"s{i:03d}", FRAMES, SIZE) for i in range(40)]


def test_same_seed_same_bytes(world: Path, tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path / "a"), "--size", "48x80", *ARGS]) == 0
    assert files(tmp_path / "a") == files(world)
    assert main(["--out", str(tmp_path / "b"), "--size", "48x80", "--seed", "1", *ARGS]) == 0
    assert files(tmp_path / "b") != files(world)


def test_record_and_rerun(world: Path) -> None:
    record = json.loads((world / "world.json").read_text())
    assert record == {
        "version": VERSION,
        "seed": 0,
        "videos": COUNTS,
        "frames": FRAMES,
        "size": list(SIZE),
    }
    assert main(["--out", str(world), "--size", "48x80", *ARGS]) == 0
    with pytest.raises(ConfigError, match="other options"):
        generate(world, seed=1, counts=COUNTS, frames=FRAMES, size=SIZE)


def test_frames_are_the_drawn_videos(world: Path, videos: dict[str, Video]) -> None:
    jpeg = np.asarray(Image.open(world / "refer_youtube_vos/valid/JPEGImages/valid001/00010.jpg"))
    assert jpeg.shape == (*SIZE, 3)
    assert np.abs(jpeg.astype(int) - videos["valid001"].frames[2]).mean() < 8


def test_readers_open_every_split(world: Path) -> None:
    counts = {
        ("refytvos", "train"): 5,
        ("refytvos", "valid"): 3,
        ("refytvos", "test"): 2,
        ("mevis", "train"): 5,
        ("mevis", "valid_u"): 3,
        ("mevis", "valid"): 2,
        ("refdavis", "train"): 5,
        ("refdavis", "valid"): 3,
    }
    for (name, split), count in counts.items():
        dataset = open_dataset(name, world, split)
        assert len(dataset) == count, (name, split)
        for video in dataset:
            assert len(video.frame_paths()) == FRAMES
            assert video.checked_frame_size() == SIZE


def test_refytvos_pairs_single_out_their_object(world: Path, videos: dict[str, Video]) -> None:
    for split in ("train", "valid"):
        dataset = open_dataset("refytvos", world, split)
        for video in dataset:
            drawn = videos[video.id]
            assert len(video.expressions) == 2 * len(drawn.things)
            for first, second in zip(video.expressions[::2], video.expressions[1::2], strict=True):
                assert first.obj_ids == second.obj_ids and first.text != second.text
                for expression in (first, second):
                    assert referred(expression.text, drawn.things) == (expression.obj_ids[0] - 1,)
            png = world / f"refer_youtube_vos/{split}/Annotations/{video.id}/00005.png"
            assert np.array_equal(np.asarray(Image.open(png)), drawn.labels[1])
    test = open_dataset("refytvos", world, "test")
    assert all(not e.obj_ids for v in test for e in v.expressions)


def test_refytvos_meta_json_lists_the_frames_showing_each_object(
    world: Path, videos: dict[str, Video]
) -> None:
    meta = json.loads((world / "refer_youtube_vos/train/meta.json").read_text())["videos"]
    for video_id, entry in meta.items():
        drawn = videos[video_id]
        for obj_id, obj in entry["objects"].items():
            shown = drawn.visible(int(obj_id) - 1).any(axis=(1, 2))
            assert obj["frames"] == [f"{5 * t:05d}" for t in np.flatnonzero(shown)]
            assert obj["frames"], "every object shows"


def test_mevis_expressions_and_masks(world: Path, videos: dict[str, Video]) -> None:
    mask_dict = json.loads((world / "mevis/valid_u/mask_dict.json").read_text())
    several = nothing = 0
    for video in open_dataset("mevis", world, "valid_u"):
        drawn = videos[video.id]
        for expression in video.expressions:
            targets = referred(expression.text, drawn.things)
            said = set(meaning(expression.text))
            assert said & {"direction", "speed", "pattern", "presence"}, "names a motion"
            assert said & {"size", "texture", "colour", "shape"} in ({"shape"}, {"colour"}, set())
            assert expression.obj_ids == targets
            for k, anno in zip(targets, expression.anno_ids, strict=True):
                assert mask_dict[anno] == [
                    rle_encode(m) if m.any() else None for m in drawn.visible(k)
                ]
            several += len(targets) > 1
            nothing += not targets
    assert several > 0 and nothing > 0
    train = open_dataset("mevis", world, "train")
    assert all(e.anno_ids for v in train for e in v.expressions), "train: every expression refers"
    assert all(not e.anno_ids for v in open_dataset("mevis", world, "valid") for e in v.expressions)


def test_refdavis_four_expressions_per_first_frame_object(
    world: Path, videos: dict[str, Video]
) -> None:
    for video in open_dataset("refdavis", world, "valid"):
        drawn = videos[video.id]
        described = first_frame_objects(drawn)
        assert described and all(drawn.visible(k)[0].any() for k in described)
        assert len(video.expressions) == 4 * len(described)
        for e, expression in enumerate(video.expressions):
            assert expression.obj_ids == (e // 4 + 1,)
            assert referred(expression.text, drawn.things) == (described[e // 4],)
        labels = np.asarray(Image.open(world / f"ref-davis/valid/Annotations/{video.id}/00003.png"))
        for j, k in enumerate(described):
            assert np.array_equal(labels == j + 1, drawn.visible(k)[3])
        assert int(labels.max()) <= len(described)


def test_refcoco_sentences_single_out_their_object_in_the_image(
    world: Path, videos: dict[str, Video]
) -> None:
    coco = json.loads((world / "coco/refcocog/instances_refcocog_train.json").read_text())
    assert coco["images"] and len(coco["images"]) == len(coco["annotations"])
    for image, annotation in zip(coco["images"], coco["annotations"], strict=True):
        drawn = videos[f"train{image['original_img_id'] - 1:03d}"]
        said = meaning(image["caption"])
        assert set(said) <= {"size", "texture", "colour", "shape"}
        shown = [k for k in range(len(drawn.things)) if drawn.visible(k)[0].sum() >= 12]
        matching = [k for k in shown if k in referents(said, drawn.things)]
        assert len(matching) == 1
        assert annotation["area"] == int(drawn.visible(matching[0])[0].sum())


def test_occlusion_follows_the_depth_order(sample: list[Video]) -> None:
    overlaps = 0
    for video in sample:
        near = np.zeros(video.labels.shape, np.uint8)
        for k in video.depth:  # far to near: a nearer object overwrites
            near[video.amodal[k]] = k + 1
        assert np.array_equal(near, video.labels)
        overlaps += int((video.amodal.sum(axis=0) > 1).sum())
        for k, thing in enumerate(video.things):
            colours = video.frames[video.visible(k)].astype(float)
            reference = np.array(COLOURS[thing.colour], float)
            shade = colours.sum(axis=1) / reference.sum()
            assert np.abs(colours - shade[:, None] * reference).max() <= 2
    assert overlaps > 0, "objects hide one another somewhere"


def test_objects_enter_and_leave(sample: list[Video]) -> None:
    seen = {"enters": 0, "leaves": 0}
    for video in sample:
        for k, thing in enumerate(video.things):
            amodal = video.amodal[k].any(axis=(1, 2))
            if thing.presence == "enters":
                assert not amodal[0] and video.shown(k).sum() >= 2
            elif thing.presence == "leaves":
                assert amodal[0] and not amodal[-1]
            else:
                assert amodal[0] and amodal[-1]
            seen[thing.presence] = seen.get(thing.presence, 0) + 1
    assert seen["enters"] and seen["leaves"]


def test_objects_that_stop_and_start(sample: list[Video]) -> None:
    for video in sample:
        for thing, track in zip(video.things, video.tracks, strict=True):
            centres = np.array([track.centre(thing.pattern, t) for t in range(FRAMES)])
            moved = np.abs(np.diff(centres, axis=0)).sum(axis=1) > 0
            expected = {
                "still": [False] * (FRAMES - 1),
                "moves": [True] * (FRAMES - 1),
                "stops": [t < track.switch for t in range(FRAMES - 1)],
                "starts": [t >= track.switch for t in range(FRAMES - 1)],
            }[thing.pattern]
            assert moved.tolist() == expected


def test_distractors_share_attributes(sample: list[Video]) -> None:
    """Most videos hold two objects alike in all but one or two attributes, so that an
    expression must combine words."""
    alike = 0
    for video in sample:
        things = video.things
        shared = [
            sum(getattr(a, m) == getattr(b, m) for m in ("size", "colour", "texture", "shape"))
            for i, a in enumerate(things)
            for b in things[i + 1 :]
        ]
        alike += max(shared) >= 3
    assert alike >= 0.6 * len(sample)


def test_some_expressions_need_two_words(sample: list[Video]) -> None:
    """Distractors make some objects nameable only by two attributes together."""
    combined = 0
    for video in sample:
        rng = video_rng(5, video.id, "test")
        for k in range(len(video.things)):
            for sentence in object_sentences(k, video.things, rng, 2):
                said = {key: v for key, v in meaning(sentence.text).items() if key != "shape"}
                alone = [referents({key: v}, video.things) for key, v in said.items()]
                combined += len(said) >= 2 and all(len(a) > 1 for a in alone)
    assert combined > 0


def test_vocabulary_phrases_hold_every_word() -> None:
    assert {w for p in vocabulary_phrases() for w in p.split()} == set(WORDS) | FILLERS


@pytest.mark.parametrize("bad", [["--frames", "5"], ["--size", "16x80"], ["--size", "96"]])
def test_bad_options_write_nothing(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "w"), *bad])
    assert exit_info.value.code != 0 and not (tmp_path / "w").exists()
