"""The generated world (rvos_core.world) through the project's other readers: the training sets,
the propagators' layouts, and the evaluations, which score the world's own answers perfect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_core.data import open_dataset
from rvos_core.data.refdavis import annotator_runs
from rvos_core.errors import ConfigError
from rvos_core.palette import write_label_png
from rvos_core.world import VERSION, Video
from rvos_core.world.layouts import (
    first_frame_labels,
    first_frame_objects,
    frame_names,
    write_world,
)
from rvos_eval import davis, mevis, refdavis
from rvos_nn.text import (
    ROBERTA_TOKENIZER,
    TEXT_ENCODERS,
    UNINEXT_BERT_TOKENIZER,
    load_tokenizer,
)
from rvos_train.data import DATASETS, open_joint, open_training_set
from rvos_train.data.vos.layouts import davis_videos, youtubevos_videos
from rvos_train.generate import generate

SEED, FRAMES, SIZE = 3, 8, (48, 80)
COUNTS = {"train": 4, "valid": 3, "test": 1}
AS_STORED = {"hflip": False, "short_size": SIZE[0], "max_size": 1000}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Video]]:
    root = tmp_path_factory.mktemp("world")
    drawn = write_world(root, SEED, COUNTS, FRAMES, SIZE)
    return root, {v.id: v for videos in drawn.values() for v in videos}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("recipe", ["referformer", "soc", "uninext"])
def test_every_training_set_opens(
    world: tuple[Path, dict[str, Video]], name: str, recipe: str
) -> None:
    root, _ = world
    frames = 2 if recipe == "uninext" else 3
    dataset = open_training_set(name, root, recipe=recipe, num_frames=frames)
    clip = dataset.clip(len(dataset) - 1, np.random.default_rng(0))
    assert clip.frames.shape[0] == frames and bool(clip.valid.any())


def test_joint_set_and_propagator_layouts(world: tuple[Path, dict[str, Video]]) -> None:
    root, _ = world
    assert len(open_joint(root, num_frames=2)) > 0
    assert [v.source for v in davis_videos(root)] == [f"davis2017/train{i:03d}" for i in range(4)]
    assert len(youtubevos_videos(root)) == COUNTS["train"]


def test_refytvos_clips_show_the_referred_object(world: tuple[Path, dict[str, Video]]) -> None:
    root, videos = world
    dataset = open_training_set("refytvos", root, recipe="soc", num_frames=3, **AS_STORED)
    meta = open_dataset("refytvos", root, "train")
    rng = np.random.default_rng(1)
    for i in range(len(dataset)):
        clip = dataset.clip(i, rng)
        _, video_id, exp_id = clip.source.split("/")
        obj_id = next(e.obj_ids[0] for e in meta.video(video_id).expressions if e.id == exp_id)
        visible = videos[video_id].visible(obj_id - 1)
        assert np.array_equal(clip.masks.numpy(), visible[clip.frame_ids.numpy()])


def _write_masks(folder: Path, masks: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, masks, strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}.png")


def test_mevis_valid_u_truth_scores_perfect(
    world: tuple[Path, dict[str, Video]], tmp_path: Path
) -> None:
    root, videos = world
    dataset = open_dataset("mevis", root, "valid_u")
    empty = 0
    for video in dataset:
        drawn = videos[video.id]
        for expression in video.expressions:
            union = np.zeros(drawn.labels.shape, bool)
            for k in expression.obj_ids:
                union |= drawn.visible(k)
            empty += not expression.obj_ids
            _write_masks(tmp_path / video.id / expression.id, union, list(video.frames))
    result = mevis.evaluate(dataset, dataset.extra["mask_dict"], tmp_path)
    assert empty > 0 and result.jf == pytest.approx(1.0)


def test_refdavis_valid_truth_scores_perfect(
    world: tuple[Path, dict[str, Video]], tmp_path: Path
) -> None:
    """Each annotator run's j-th expression predicts label j + 1 (ReferFormer's convention) with
    the mask of the object its obj_id names."""
    root, videos = world
    dataset = open_dataset("refdavis", root, "valid")
    for video in dataset:
        drawn = videos[video.id]
        objects = first_frame_objects(drawn)
        expressions = {e.id: e for e in video.expressions}
        for run, exp_ids in zip(refdavis.RUNS, annotator_runs(video), strict=True):
            labels = np.zeros(drawn.labels.shape, np.uint8)
            for j, exp_id in enumerate(exp_ids):
                labels[drawn.visible(objects[expressions[exp_id].obj_ids[0] - 1])] = j + 1
            folder = tmp_path / run / video.id
            folder.mkdir(parents=True)
            for name, frame_labels in zip(video.frames, labels, strict=True):
                write_label_png(folder / f"{name}.png", frame_labels)
    result = refdavis.evaluate(dataset, tmp_path, "referformer")
    assert result.mean_over_runs["J&F-Mean"] == pytest.approx(1.0)


def test_davis_val_truth_scores_perfect(
    world: tuple[Path, dict[str, Video]], tmp_path: Path
) -> None:
    root, videos = world
    for i in range(COUNTS["valid"]):
        video = videos[f"valid{i:03d}"]
        folder = tmp_path / video.id
        folder.mkdir()
        for name, frame_labels in zip(
            frame_names(FRAMES, 1), first_frame_labels(video), strict=True
        ):
            write_label_png(folder / f"{name}.png", frame_labels)
    result = davis.evaluate(root / "DAVIS", "val", "semi-supervised", tmp_path)
    assert result.table["J&F-Mean"] == pytest.approx(1.0)


def test_generate_world_v2_with_tokenizers_for_every_expression(tmp_path: Path) -> None:
    """``rvos_train.generate --world v2``: the world and tokenizers that encode every expression
    of every split (trained on the train splits' expressions) without an unknown token."""
    out = generate(
        tmp_path / "gen", videos=4, valid_videos=2, frames=6, size=SIZE, seed=0, world="v2"
    )
    assert json.loads((out / "data" / "world.json").read_text())["version"] == VERSION
    captions = [
        e.text
        for name, split in (("refytvos", "valid"), ("mevis", "valid_u"), ("refdavis", "valid"))
        for v in open_dataset(name, out / "data", split)
        for e in v.expressions
    ]
    roberta = load_tokenizer(
        ROBERTA_TOKENIZER, out / "pretrained", TEXT_ENCODERS["tiny-roberta"].max_tokens
    )
    unknown = roberta.backend.convert_tokens_to_ids("<unk>")
    assert not (roberta(captions).input_ids == unknown).any()
    bert = load_tokenizer(
        UNINEXT_BERT_TOKENIZER, out / "pretrained", TEXT_ENCODERS["tiny-bert"].max_tokens
    )
    assert not (bert(captions).input_ids == bert.backend.unk_token_id).any()
    again = generate(
        tmp_path / "gen", videos=4, valid_videos=2, frames=6, size=SIZE, seed=0, world="v2"
    )
    assert again == out
    with pytest.raises(ConfigError, match="other options"):
        generate(tmp_path / "gen", videos=4, valid_videos=2, frames=6, size=SIZE, seed=0)
