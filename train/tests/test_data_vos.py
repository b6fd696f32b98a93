"""The propagators' training sets (rvos_train.data.vos) on small written layouts of YouTube-VOS,
DAVIS-2017 and the static image sets: what a clip holds, determinism, the object cap, the reverse
and merge paths, and the errors on bad input."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_core.errors import ConfigError, InputError
from rvos_core.palette import write_label_png
from rvos_core.synthetic import VideoSpec, label_maps, rle_encode, write_davis
from rvos_train.data.vos import VOS_DATASETS, VOSClip, concat, open_vos_set
from rvos_train.data.vos.augment import balanced_crop
from rvos_train.data.vos.layouts import youtubevos_videos
from rvos_train.data.vos.merge import merge
from rvos_train.data.vos.sequence import reflect, sample_indices
from rvos_train.generate import generate
from rvos_vos.views import MEAN, STD, normalize, read_frame

# three objects per video (six expressions), frames 64x96; clips cropped to 48x48
SPECS = [VideoSpec(f"v{i}", 6, 6, (64, 96)) for i in range(3)]
SMALL = {"crop_size": (48, 48), "short_edge": 64}


def _palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_label_png(path, labels)


def _write_frames(folder: Path, spec: VideoSpec, count: int | None = None) -> list[str]:
    """JPEG frames of ``spec`` (a textured background, objects painted in their label colour);
    returns their names."""
    labels = label_maps(spec)
    noise = np.random.default_rng(len(spec.id)).integers(0, 60, (*spec.size, 3))
    folder.mkdir(parents=True, exist_ok=True)
    names = spec.frame_names[:count]
    for name, frame_labels in zip(names, labels, strict=False):
        rgb = (noise + 60 * frame_labels[..., None]).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{name}.jpg", quality=95)
    return names


def write_youtubevos(root: Path) -> Path:
    """YouTube-VOS 2019 train under ``root/YTB/2019/train`` (upstream's DIR_YTB layout); object 3
    of v2 is listed in one frame only, so upstream's rule leaves it out of the frame list."""
    split = root / "YTB" / "2019" / "train"
    videos = {}
    for spec in SPECS:
        names = _write_frames(split / "JPEGImages" / spec.id, spec)
        labels = label_maps(spec)
        for name, frame_labels in zip(names, labels, strict=True):
            _palette_png(split / "Annotations" / spec.id / f"{name}.png", frame_labels)
        objects = {
            str(k): {"category": "blob", "frames": names} for k in range(1, spec.objects + 1)
        }
        videos[spec.id] = {"objects": objects}
    videos["v2"]["objects"]["3"]["frames"] = ["00000"]
    videos["v2"]["objects"]["2"]["frames"] = ["00000", "00010"]
    videos["v2"]["objects"]["1"]["frames"] = ["00010", "00020"]
    (split / "meta.json").write_text(json.dumps({"videos": videos}))
    return root


def _image_and_labels(folder: Path, spec: VideoSpec, stem: str) -> np.ndarray:
    """Frame 0 of ``spec`` written as ``folder/<stem>.jpg``; returns its labels."""
    _write_frames(folder, spec, 1)
    (folder / "00000.jpg").rename(folder / f"{stem}.jpg")
    return label_maps(spec)[0]


def _gray_png(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), "L").save(path)


def write_static(root: Path) -> Path:
    """The static sets: COCO in the prepared layout (static/, palette, three objects per image)
    and the others as downloaded: ECSSD (binary 0/255 masks), MSRA10K and PASCAL-S (a saliency
    mask of several grey levels), PASCAL VOC 2012 (object ids and the 255 void border)."""
    for spec in SPECS:
        labels = _image_and_labels(root / "static" / "JPEGImages" / "COCO", spec, spec.id)
        _palette_png(root / "static" / "Annotations" / "COCO" / f"{spec.id}.png", labels)
        labels = _image_and_labels(root / "ECSSD" / "images", spec, spec.id)
        _gray_png(root / "ECSSD" / "ground_truth_mask" / f"{spec.id}.png", (labels > 0) * 255)
    saliency = label_maps(SPECS[0])[0].choose(
        [0, 60, 200, 255]
    )  # 60: background, 200, 255: objects
    msra = root / "MSRA10K" / "MSRA10K_Imgs_GT" / "Imgs"
    _image_and_labels(msra, SPECS[0], "75")
    _gray_png(msra / "75.png", saliency)
    _image_and_labels(root / "PASCAL-S" / "datasets" / "imgs" / "pascal", SPECS[0], "1")
    _gray_png(root / "PASCAL-S" / "datasets" / "masks" / "pascal" / "1.png", saliency)
    voc = root / "VOCdevkit" / "VOC2012"
    labels = _image_and_labels(voc / "JPEGImages", SPECS[1], "2007_000032")
    _palette_png(voc / "SegmentationObject" / "2007_000032.png", np.where(labels == 3, 255, labels))
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "trainval.txt").write_text("2007_000032\n")
    return root


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vosdata")
    write_davis(root, {"train": SPECS[:2]})  # DAVIS-2017 train (480p) of v0, v1
    return write_static(write_youtubevos(root))


@pytest.fixture
def data(stored: Path, tmp_path: Path) -> Path:
    """A copy of the written DATA folder that a test may damage."""
    return Path(shutil.copytree(stored, tmp_path / "data"))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_clip(clip: VOSClip, num_frames: int, size: tuple[int, int], max_obj: int) -> None:
    assert clip.frames.shape == (num_frames, 3, *size) and str(clip.frames.dtype) == "torch.float32"
    assert clip.labels.shape == (num_frames, *size) and str(clip.labels.dtype) == "torch.uint8"
    pixels = clip.frames.numpy().transpose(0, 2, 3, 1) * STD + MEAN
    assert pixels.min() > -0.3 and pixels.max() < 1.3  # bicubic overshoots a little
    labels = clip.labels.numpy()
    assert 0 <= clip.obj_num <= max_obj
    assert labels.max() <= clip.obj_num
    # consecutive ids: each of 1..obj_num is an object of the reference frame
    assert set(np.unique(labels[0])) - {0} == set(range(1, clip.obj_num + 1))


@pytest.mark.parametrize("name", VOS_DATASETS)
def test_clip_shapes_dtypes_and_ids(stored: Path, name: str) -> None:
    options = {"crop_size": (48, 40)} if name == "static" else SMALL
    dataset = open_vos_set(name, stored, num_frames=4, **options)
    size = (48, 40) if name == "static" else (48, 48)
    for index in range(len(dataset)):
        check_clip(dataset.clip(index, rng(index)), 4, size, 10)


def test_video_clip_as_stored_without_augmentation(stored: Path) -> None:
    """Scale 1, a crop the frame's size, no flip, no merge: the clip is the stored frames, read
    and normalised as the propagators read frames at inference, and their labels."""
    options = {"scale": (1.0, 1.0), "short_edge": 64, "crop_size": (64, 96), "flip": 0.0}
    dataset = open_vos_set("davis2017", stored, num_frames=3, merge_prob=0.0, **options)
    video = dataset.entries[0]
    stored_frames = [normalize(read_frame(p)) for p in video.frames]
    stored_labels = [np.asarray(Image.open(p)) for p in video.labels]
    for seed in range(3):
        clip = dataset.clip(0, rng(seed))
        for frame, labels in zip(clip.frames, clip.labels.numpy(), strict=True):
            same = [t for t, f in enumerate(stored_frames) if f.equal(frame)]
            assert len(same) == 1 and (stored_labels[same[0]] == labels).all()


def test_flip_mirrors_frames_and_labels(stored: Path) -> None:
    kept, mirrored = (
        open_vos_set("youtubevos", stored, num_frames=3, flip=p, merge_prob=0.0, **SMALL)
        for p in (0.0, 1.0)
    )
    for seed in range(3):
        plain, flipped = kept.clip(1, rng(seed)), mirrored.clip(1, rng(seed))
        assert flipped.frames.equal(plain.frames.flip(-1))
        assert flipped.labels.equal(plain.labels.flip(-1))


@pytest.mark.parametrize("name", VOS_DATASETS)
def test_frames_and_labels_stay_aligned(stored: Path, name: str) -> None:
    """The written objects are brighter than their background: after every warp, crop, flip and
    merge the pixels labelled as objects still are bright."""
    options = {"crop_size": (48, 48)} if name == "static" else {**SMALL, "flip": 1.0}
    dataset = open_vos_set(name, stored, num_frames=3, **options)
    for seed in range(4):
        clip = dataset.clip(seed % len(dataset), rng(seed))
        grey = (clip.frames.numpy().transpose(0, 2, 3, 1) * STD + MEAN).mean(axis=-1)
        for frame, labels in zip(grey, clip.labels.numpy(), strict=True):
            if labels.any():  # objects: grey >= 60 / 255 as written; the background below
                assert (frame[labels > 0] > 0.2).mean() > 0.9


@pytest.mark.parametrize("name", ["youtubevos", "static"])
def test_deaot_colour_steps(stored: Path, name: str) -> None:
    """aug="v2" makes some frames grey (p 0.2 each); "v1" never does (the frames are coloured)."""
    options = {"crop_size": (48, 48)} if name == "static" else SMALL

    def grey_frames(aug: str) -> int:
        dataset = open_vos_set(name, stored, num_frames=3, aug=aug, merge_prob=0.0, **options)
        grey = 0
        for seed in range(6):
            pixels = dataset.clip(seed % len(dataset), rng(seed)).frames.numpy()
            rgb = pixels * np.float32(STD)[:, None, None] + np.float32(MEAN)[:, None, None]
            grey += int((np.ptp(rgb, axis=1).max(axis=(1, 2)) < 0.01).sum())
        return grey

    assert grey_frames("v1") == 0
    assert 0 < grey_frames("v2") < 18


def test_padding_colour(stored: Path) -> None:
    options = {"scale": (1.0, 1.0), "short_edge": 48, "crop_size": (80, 80), "flip": 0.0}
    clip = open_vos_set("youtubevos", stored, num_frames=2, merge_prob=0.0, **options).clip(
        0, rng()
    )
    pad = normalize(np.broadcast_to(np.float32([124, 116, 104]), (1, 1, 3)).copy())[:, 0, 0]
    padded = (clip.frames == pad[None, :, None, None]).all(dim=1)
    assert padded.sum(dim=(1, 2)).min() >= 80 * 80 - 48 * 72
    assert (clip.labels[padded] == 0).all()


def test_index_meaning_and_lengths(stored: Path) -> None:
    youtube = open_vos_set("youtubevos", stored, num_frames=3)
    davis = open_vos_set("davis2017", stored, num_frames=3)
    static = open_vos_set("static", stored, num_frames=3)
    assert len(youtube) == 3 and len(static) == 9
    assert [static.entries[i].source for i in (0, 3, 6, 7, 8)] == [
        "static/COCO/v0",
        "static/ECSSD/v0",
        "static/MSRA10K/75",
        "static/PASCAL-S/1",
        "static/PASCALVOC2012/2007_000032",
    ]
    assert len(davis) == 2 * 5  # DATA_DAVIS_REPEAT
    assert len(open_vos_set("davis2017", stored, num_frames=3, repeat=1)) == 2
    videos = youtubevos_videos(stored)
    assert [v.source for v in videos] == ["youtubevos/v0", "youtubevos/v1", "youtubevos/v2"]
    # v2: object 3 is listed in one frame only; the frames are the union of the others'
    assert [p.stem for p in videos[2].frames] == ["00000", "00010", "00020"]
    with pytest.raises(IndexError):
        davis.clip(10, rng())
    both = concat([youtube, davis])
    assert len(both) == 13
    assert both.clip(3, rng()).source.startswith("davis2017/v0")


def test_same_generator_state_same_clip(stored: Path) -> None:
    for name in VOS_DATASETS:
        options = {"crop_size": (48, 48)} if name == "static" else SMALL
        dataset = open_vos_set(name, stored, num_frames=3, aug="v2", **options)
        state = random.getstate(), np.random.get_state()[1].copy()
        first, second = dataset.clip(1, rng(7)), dataset.clip(1, rng(7))
        assert first.frames.equal(second.frames) and first.labels.equal(second.labels)
        assert (first.obj_num, first.source) == (second.obj_num, second.source)
        other = dataset.clip(1, rng(8))
        assert not other.frames.equal(first.frames)
        assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()


def test_object_count_cap(stored: Path) -> None:
    for name in VOS_DATASETS:
        sizes = {"crop_size": (64, 64)} if name == "static" else {**SMALL, "crop_size": (64, 64)}
        dataset = open_vos_set(name, stored, num_frames=3, max_obj_num=2, **sizes)
        counts = {dataset.clip(i % len(dataset), rng(i)).obj_num for i in range(8)}
        assert max(counts) == 2, name


def test_balanced_crop_keeps_large_objects_renumbered() -> None:
    labels = np.zeros((2, 40, 40), np.uint8)
    labels[:, :20, :20] = 7  # 400 pixels
    labels[:, 30:35, 30:35] = 9  # 25 pixels: too small to count
    labels[:, 20:40, :20] = 4  # 400 pixels
    frames = np.zeros((2, 40, 40, 3), np.float32)
    _, crop, count = balanced_crop(frames, labels, (40, 40), 5, 10, rng())
    assert count == 2 and set(np.unique(crop)) == {0, 1, 2}
    assert (crop[labels == 4] == 1).all() and (crop[labels == 7] == 2).all()
    assert (crop[labels == 9] == 0).all()
    _, capped, count = balanced_crop(frames, labels, (40, 40), 5, 1, rng())
    assert count == 1 and set(np.unique(capped)) == {0, 1}


def test_merge_pastes_the_second_over_the_first() -> None:
    first = np.zeros((2, 30, 30), np.uint8)
    first[:, :15] = 1
    first[:, 15:, :15] = 2
    second = np.zeros((2, 30, 30), np.uint8)
    second[:, :12, :12] = 1  # covers most of object 1 of the first, not all
    second[:, 25:, 25:] = 2  # 25 pixels: dropped
    frames_a, frames_b = np.full((2, 30, 30, 3), 10.0), np.full((2, 30, 30, 3), 200.0)
    frames, labels, count = merge((frames_a, first), (frames_b, second), 10, rng())
    assert count == 3
    assert (labels[first == 1] != 2).all() and (labels[:, :12, :12] == 3).all()
    assert (labels[:, 25:, 25:] == 0).all() and (frames[:, 25:, 25:] == 200).all()
    assert (frames[:, 20, 5] == 10).all()
    _, capped, count = merge((frames_a, first), (frames_b, second), 2, rng())
    assert count == 2 and capped.max() == 2


def test_merge_path_reached_and_switched_off(stored: Path) -> None:
    merged = open_vos_set("youtubevos", stored, num_frames=3, merge_prob=1.0, **SMALL)
    plain = open_vos_set("youtubevos", stored, num_frames=3, merge_prob=0.0, **SMALL)
    for seed in range(4):
        clip = merged.clip(0, rng(seed))
        assert clip.source.startswith("youtubevos/v0+youtubevos/v")
        check_clip(clip, 3, (48, 48), 10)
        if plain.clip(0, rng(seed)).obj_num:
            assert "+" not in plain.clip(0, rng(seed)).source
    static = open_vos_set("static", stored, num_frames=3)  # PRE stage: always merged
    assert "+" in static.clip(0, rng()).source


def test_clip_without_objects_is_always_merged(tmp_path: Path) -> None:
    folder = tmp_path / "static"
    for spec, keep in zip(SPECS[:2], (False, True), strict=True):
        labels = _image_and_labels(folder / "JPEGImages" / "ECSSD", spec, spec.id)
        _palette_png(folder / "Annotations" / "ECSSD" / f"{spec.id}.png", labels * keep)
    static = open_vos_set("static", tmp_path, num_frames=2, merge_prob=0.0, crop_size=(48, 48))
    assert static.clip(1, rng()).source == "static/ECSSD/v1"
    merged = static.clip(0, rng())
    assert merged.source == "static/ECSSD/v0+static/ECSSD/v1" and merged.obj_num > 0


def test_reflect_and_reverse() -> None:
    assert [reflect(i, 4) for i in (-2, 0, 3, 4, 5, 9)] == [2, 0, 3, 2, 1, 3]
    assert reflect(7, 1) == 0


def test_sequence_frames_and_reverse_path(stored: Path) -> None:
    video = youtubevos_videos(stored)[0]
    orders = set()
    for seed in range(12):
        positions, labels = sample_indices(video, 4, 3, True, rng(seed))
        assert len(positions) == 4 and positions.min() >= 0 and positions.max() < 6
        assert (np.abs(np.diff(positions)) <= 3).all()  # gaps of 1..3, reflected at the ends
        orders.add(int(labels.order[0]))
        steps, _ = sample_indices(video, 5, 1, True, rng(seed))
        assert steps.tolist() == [reflect(int(steps[0]) + k, 6) for k in range(5)]
    assert orders == {0, 5}
    forward = {int(sample_indices(video, 4, 3, False, rng(s))[1].order[0]) for s in range(8)}
    assert forward == {0}


def test_generated_world_opens_as_youtubevos_and_davis2017(tmp_path: Path) -> None:
    out = generate(tmp_path / "world", videos=2, valid_videos=0, frames=4, size=(64, 96), seed=0)
    dataset = open_vos_set("youtubevos", out / "data", num_frames=3, **SMALL)
    assert len(dataset) == 2
    check_clip(dataset.clip(1, rng()), 3, (48, 48), 10)
    davis = open_vos_set("davis2017", out / "data", num_frames=3, repeat=1, **SMALL)
    assert len(davis) == 2
    check_clip(davis.clip(0, rng()), 3, (48, 48), 10)


def test_static_downloads_read_as_the_preparation_does(stored: Path) -> None:
    entries = {e.source: e for e in open_vos_set("static", stored, num_frames=2).entries}
    first = label_maps(SPECS[0])[0]
    assert set(np.unique(first)) == {0, 1, 2, 3}
    # grey 60 is background, 200 and 255 are objects 1 and 2
    for source in ("static/MSRA10K/75", "static/PASCAL-S/1"):
        assert (entries[source].labels.read(first.shape) == first.choose([0, 0, 1, 2])).all()
    ecssd = entries["static/ECSSD/v0"].labels.read(first.shape)
    assert (ecssd == (first > 0)).all()
    second = label_maps(SPECS[1])[0]
    voc = entries["static/PASCALVOC2012/2007_000032"].labels.read(second.shape)
    assert (voc == np.where(second == 3, 0, second)).all()  # the void 255 is background


def _coco_annotation(image_id: int, mask: np.ndarray) -> dict:
    return {"image_id": image_id, "area": int(mask.sum()), "segmentation": rle_encode(mask)}


def test_coco_download_and_prepared_precedence(tmp_path: Path) -> None:
    boxes = [
        (slice(0, 30), slice(0, 40)),
        (slice(40, 45), slice(0, 5)),
        (slice(20, 40), slice(30, 60)),
    ]
    masks = [np.zeros((64, 96), bool) for _ in boxes]
    for mask, box in zip(masks, boxes, strict=True):
        mask[box] = True
    images = [{"id": 7, "file_name": "a.jpg", "height": 64, "width": 96}]
    images.append({"id": 8, "file_name": "b.jpg", "height": 64, "width": 96})
    annotations = [_coco_annotation(7, m) for m in masks] + [_coco_annotation(8, masks[1])]
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    instances = coco / "annotations" / "instances_val2017.json"
    instances.write_text(json.dumps({"images": images, "annotations": annotations}))
    _image_and_labels(coco / "val2017", SPECS[0], "a")
    dataset = open_vos_set("static", tmp_path, num_frames=2, merge_prob=0.0)
    # b.jpg has only an instance of area < 500: left out
    assert [e.source for e in dataset.entries] == ["static/COCO/a"]
    labels = dataset.entries[0].labels.read((64, 96))
    assert labels[10, 10] == 1 and labels[25, 35] == 2 and labels[42, 2] == 0
    check_clip(dataset.clip(0, rng()), 2, (464, 464), 10)
    images[0]["height"] = 50
    instances.write_text(json.dumps({"images": images, "annotations": annotations}))
    with pytest.raises(InputError, match="annotated as 96x50") as error:
        open_vos_set("static", tmp_path, num_frames=2).clip(0, rng())
    assert error.value.path == instances
    labels = _image_and_labels(tmp_path / "static" / "JPEGImages" / "COCO", SPECS[1], "p")
    _palette_png(tmp_path / "static" / "Annotations" / "COCO" / "p.png", labels)
    prepared = open_vos_set("static", tmp_path, num_frames=2)
    assert [e.source for e in prepared.entries] == ["static/COCO/p"]


def test_unknown_names_and_options(stored: Path) -> None:
    with pytest.raises(ConfigError, match="known: static, youtubevos, davis2017"):
        open_vos_set("ytvos", stored, num_frames=5)
    with pytest.raises(ConfigError, match=r"no option gap; known: .*random_gap"):
        open_vos_set("davis2017", stored, num_frames=5, gap=3)
    with pytest.raises(ConfigError, match="no option random_gap"):
        open_vos_set("static", stored, num_frames=5, random_gap=3)
    with pytest.raises(ConfigError, match="aug"):
        open_vos_set("youtubevos", stored, num_frames=5, aug="v3")
    with pytest.raises(ConfigError, match="num_frames"):
        open_vos_set("youtubevos", stored, num_frames=1)


def test_missing_layouts_and_meta(data: Path, tmp_path: Path) -> None:
    for name in VOS_DATASETS:
        with pytest.raises(InputError, match="expected"):
            open_vos_set(name, tmp_path / "empty", num_frames=3)
    meta = data / "YTB" / "2019" / "train" / "meta.json"
    meta.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON") as error:
        open_vos_set("youtubevos", data, num_frames=3)
    assert error.value.path == meta


def test_corrupt_annotation_and_frame_name_the_file(data: Path) -> None:
    annotation = data / "YTB" / "2019" / "train" / "Annotations" / "v0" / "00005.png"
    annotation.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    frame = data / "DAVIS" / "JPEGImages" / "480p" / "v1" / "00000.jpg"
    frame.write_bytes(b"not a jpeg")
    youtube = open_vos_set("youtubevos", data, num_frames=6, random_gap=1, reverse=False)
    with pytest.raises(InputError) as error:
        for seed in range(10):
            youtube.clip(0, rng(seed))
    assert error.value.path == annotation
    davis = open_vos_set("davis2017", data, num_frames=6, random_gap=1, reverse=False)
    with pytest.raises(InputError) as error:
        for seed in range(10):
            davis.clip(1, rng(seed))
    assert error.value.path == frame


def test_bad_davis_and_static_layouts(data: Path) -> None:
    (data / "DAVIS" / "Annotations" / "480p" / "v0" / "00002.png").unlink()
    with pytest.raises(InputError, match="one annotation per frame") as error:
        open_vos_set("davis2017", data, num_frames=3)
    assert error.value.path == data / "DAVIS" / "Annotations" / "480p" / "v0"
    (data / "ECSSD" / "ground_truth_mask" / "v1.png").unlink()
    with pytest.raises(InputError, match="missing") as error:
        open_vos_set("static", data, num_frames=3)
    assert error.value.path == data / "ECSSD" / "ground_truth_mask" / "v1.png"


def test_annotation_of_another_size(data: Path) -> None:
    path = data / "static" / "Annotations" / "COCO" / "v0.png"
    _palette_png(path, np.ones((10, 10), np.uint8))
    static = open_vos_set("static", data, num_frames=3, merge_prob=0.0)
    with pytest.raises(InputError, match="annotation is 10x10") as error:
        static.clip(0, rng())
    assert error.value.path == path
