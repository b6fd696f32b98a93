"""The training readers on generated Ref-YouTube-VOS, MeViS and RefCOCO layouts: what they read,
what an index means, and the errors on bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from rvos_core.errors import ConfigError, InputError
from rvos_core.synthetic import VideoSpec, label_maps, write_training_data
from rvos_train.data import JOINT, open_joint, open_training_set
from rvos_train.data import refcoco as refcoco_reader
from rvos_train.data.clips import CLIP_DRAWS, ClipSet, Raw
from rvos_train.data.referrals import Referral
from rvos_train.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SPECS = [VideoSpec("v0", 3, 6, (48, 64)), VideoSpec("v1", 4, 5, (40, 56))]
# no flip, no resize of v0's frames (48x64): the clip shows them and their masks as stored
AS_STORED = {"recipe": "soc", "hflip": False, "short_size": 48, "max_size": 1000}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_training_data(tmp_path_factory.mktemp("data"), SPECS)


@pytest.fixture
def data(stored: Path, tmp_path: Path) -> Path:
    """A copy of the generated DATA folder that a test may damage."""
    return Path(shutil.copytree(stored, tmp_path / "data"))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_refytvos_reads_frames_and_palette_masks(stored: Path) -> None:
    dataset = open_training_set("refytvos", stored, num_frames=6, **AS_STORED)
    clip = dataset.clip(1, rng())  # v0, expression 1 -> object 1 (label 1)
    labels = label_maps(SPECS[0])
    assert clip.source == "refytvos/v0/1" and clip.caption.endswith(("on the left", "on the right"))
    assert clip.frame_ids.tolist() == list(range(6)) and clip.orig_size == (48, 64)
    np.testing.assert_array_equal(clip.masks.numpy(), labels == 1)
    shown = np.asarray(Image.open(stored / "refer_youtube_vos/train/JPEGImages/v0/00025.jpg"))
    pixels = clip.frames[5].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
    np.testing.assert_allclose(pixels * 255, shown, atol=1e-3)


def test_mevis_target_is_the_union_of_its_objects(stored: Path) -> None:
    dataset = open_training_set("mevis", stored, num_frames=6, **AS_STORED)
    sources = [dataset.clip(i, rng()).source for i in range(4)]
    assert sources == ["mevis/v0/0", "mevis/v0/1", "mevis/v0/2", "mevis/v0/3"]
    both = dataset.clip(3, rng())  # the expression on objects 0 and 1
    labels = label_maps(SPECS[0])
    assert both.caption == "the red and green blobs"
    np.testing.assert_array_equal(both.masks.numpy(), (labels == 1) | (labels == 2))


def test_refcoco_entry_is_a_one_image_clip(stored: Path) -> None:
    clip = open_training_set("refcoco+", stored, num_frames=1, **AS_STORED).clip(2, rng())
    coco = json.loads((stored / "coco/refcoco+/instances_refcoco+_train.json").read_text())
    annotation = coco["annotations"][2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rle = coco_mask.merge(coco_mask.frPyObjects(annotation["segmentation"], 48, 64))
        expected = coco_mask.decode(rle).astype(bool)
    assert clip.source == "refcoco+/2" and clip.caption == coco["images"][2]["caption"]
    np.testing.assert_array_equal(clip.masks[0].numpy(), expected)
    assert clip.frame_ids.tolist() == [0]


def test_refcoco_pseudo_video_holds_the_image(stored: Path) -> None:
    clip = open_training_set("refcoco", stored, num_frames=5, **AS_STORED).clip(0, rng(3))
    single = open_training_set("refcoco", stored, num_frames=1, **AS_STORED).clip(0, rng())
    assert clip.frames.shape == (5, 3, 48, 64) and clip.frame_ids.tolist() == [0] * 5
    assert any(bool((f == single.frames[0]).all()) for f in clip.frames)
    assert clip.valid.sum() >= 1


def test_index_meaning_per_recipe(stored: Path) -> None:
    # referformer: one sample per expression and anchor range(0, frames, num_frames)
    referformer = open_training_set("refytvos", stored, recipe="referformer", num_frames=4)
    assert len(referformer) == 3 * 2 + 4 * 2
    # soc: one per expression and window of 4 frames (6 frames: 0-3, 2-5; 5 frames: 0-3, 1-4)
    soc = open_training_set("refytvos", stored, recipe="soc", num_frames=4)
    assert len(soc) == 3 * 2 + 4 * 2
    assert soc.clip(1, rng()).frame_ids.tolist() == [2, 3, 4, 5]
    # refcoco: one per image entry (= sentence)
    assert len(open_training_set("refcocog", stored, recipe="soc", num_frames=2)) == 7


def test_joint_is_refcoco_sets_then_refytvos(stored: Path) -> None:
    joint = open_joint(
        stored, num_frames=2, **{k: v for k, v in AS_STORED.items() if k != "recipe"}
    )
    parts = [open_training_set(n, stored, recipe="soc", num_frames=2) for n in JOINT]
    assert len(joint) == sum(map(len, parts))
    assert joint.clip(7, rng()).source == "refcoco+/0"
    assert joint.clip(len(joint) - 1, rng()).source == "refytvos/v1/3"
    with pytest.raises(IndexError):
        joint.clip(len(joint), rng())


def test_found_from_the_benchmark_folder(stored: Path) -> None:
    for name, folder in (
        ("refytvos", "refer_youtube_vos"),
        ("mevis", "mevis"),
        ("refcoco", "coco"),
    ):
        assert len(open_training_set(name, stored / folder, recipe="soc", num_frames=2)) > 0


def test_unknown_names_and_options(stored: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown training set"):
        open_training_set("a2d", stored, recipe="soc", num_frames=2)
    with pytest.raises(ConfigError, match="unknown recipe"):
        open_training_set("refytvos", stored, recipe="mttr", num_frames=2)
    with pytest.raises(ConfigError, match="no option max_skip"):
        open_training_set("refytvos", stored, recipe="soc", num_frames=2, max_skip=2)
    with pytest.raises(InputError, match="no COCO here"):
        open_training_set("refcoco", tmp_path, recipe="soc", num_frames=2)


# --- bad input -------------------------------------------------------------------------------


def edit_json(path: Path, edit) -> None:
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def test_corrupt_and_missing_frames(data: Path) -> None:
    frames = data / "refer_youtube_vos/train/JPEGImages/v0"
    (frames / "00010.jpg").write_bytes(b"not a jpeg")
    (frames / "00015.jpg").unlink()
    dataset = open_training_set("refytvos", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"00010\.jpg: unreadable image"):
        dataset.clip(0, rng())
    (frames / "00010.jpg").write_bytes((frames / "00000.jpg").read_bytes())
    with pytest.raises(InputError, match=r"00015\.jpg: frame is missing"):
        dataset.clip(0, rng())


def test_frame_of_another_size(data: Path) -> None:
    Image.new("RGB", (30, 20)).save(data / "refer_youtube_vos/train/JPEGImages/v0/00005.jpg")
    dataset = open_training_set("refytvos", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"00005\.jpg: frame is 30x20, 00000\.jpg .* is 64x48"):
        dataset.clip(0, rng())


def test_mask_of_another_size(data: Path) -> None:
    png = data / "refer_youtube_vos/train/Annotations/v0/00005.png"
    Image.fromarray(np.ones((10, 12), np.uint8), mode="P").save(png)
    dataset = open_training_set("refytvos", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"00005\.png: annotation is 12x10, its frame is 64x48"):
        dataset.clip(0, rng())
    mask_dict = data / "mevis/train/mask_dict.json"
    edit_json(mask_dict, lambda d: d["0"][0].update(size=[10, 12]))
    mevis = open_training_set("mevis", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"mask_dict\.json: anno_id 0, frame 0: RLE is 12x10"):
        mevis.clip(0, rng())


def test_annotation_not_a_palette_png(data: Path) -> None:
    Image.new("RGB", (64, 48)).save(data / "refer_youtube_vos/train/Annotations/v0/00000.png")
    dataset = open_training_set("refytvos", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"00000\.png: annotation must be a palette PNG"):
        dataset.clip(0, rng())


def test_unknown_obj_id_and_anno_id(data: Path) -> None:
    meta = data / "refer_youtube_vos/meta_expressions/train/meta_expressions.json"
    edit_json(meta, lambda d: d["videos"]["v1"]["expressions"]["2"].update(obj_id="9"))
    with pytest.raises(
        InputError, match=r"meta_expressions\.json: video v1, expression 2: obj_id 9"
    ):
        open_training_set("refytvos", data, recipe="soc", num_frames=2)
    mevis = data / "mevis/train/meta_expressions.json"
    edit_json(mevis, lambda d: d["videos"]["v0"]["expressions"]["1"].update(anno_id=["77"]))
    with pytest.raises(InputError, match=r"expression 1: anno_id 77 is not in mask_dict\.json"):
        open_training_set("mevis", data, recipe="soc", num_frames=2)


def test_object_shown_in_no_frame(data: Path, stored: Path) -> None:
    meta = data / "refer_youtube_vos/train/meta.json"
    edit_json(meta, lambda d: d["videos"]["v0"]["objects"]["2"].update(frames=[]))
    with pytest.raises(InputError, match=r"meta\.json: refytvos/v0/2: .* target in no frame"):
        open_training_set("refytvos", data, recipe="soc", num_frames=2)
    lenient = open_training_set("refytvos", data, recipe="soc", num_frames=2, strict=False)
    complete = open_training_set("refytvos", stored, recipe="soc", num_frames=2)
    assert len(lenient) == len(complete) - 3  # expression 2 of v0: 3 windows of 2 frames
    mask_dict = data / "mevis/train/mask_dict.json"
    edit_json(mask_dict, lambda d: d.update({"1": [None] * 6}))
    with pytest.raises(InputError, match=r"mask_dict\.json: mevis/v0/2: .* target in no frame"):
        open_training_set("mevis", data, recipe="soc", num_frames=2)


def test_listed_frame_with_empty_mask(data: Path) -> None:
    png = data / "refer_youtube_vos/train/Annotations/v0/00005.png"
    Image.fromarray(np.zeros((48, 64), np.uint8), mode="P").save(png)
    dataset = open_training_set("refytvos", data, num_frames=6, **AS_STORED)
    with pytest.raises(InputError, match=r"00005\.png: object 1 has no pixel here"):
        dataset.clip(0, rng())
    lenient = open_training_set("refytvos", data, num_frames=6, strict=False, **AS_STORED)
    assert lenient.clip(0, rng()).valid.tolist() == [1, 0, 1, 1, 1, 1]


def test_target_lost_in_every_draw(data: Path) -> None:
    folder = data / "refer_youtube_vos/train/Annotations/v0"
    for png in folder.iterdir():
        labels = np.zeros((48, 64), np.uint8)
        labels[1, 1] = 1  # one pixel, which a resize to 2 rows drops
        Image.fromarray(labels, mode="P").save(png)
    options = {**AS_STORED, "short_size": 2}
    dataset = open_training_set("refytvos", data, num_frames=6, **options)
    with pytest.raises(InputError, match=r"v0: refytvos/v0/0: the target is in none"):
        dataset.clip(0, rng())
    lenient = open_training_set("refytvos", data, num_frames=6, strict=False, **options)
    assert lenient.clip(0, rng()).valid.tolist() == [0] * 6


def test_refcoco_bad_entries(data: Path) -> None:
    path = refcoco_reader.annotation_path(data / "coco", "refcoco")
    edit_json(path, lambda d: d["annotations"][1].update(iscrowd=1))
    with pytest.raises(InputError, match=r"refcoco_train\.json: image entry 1: 0 usable"):
        open_training_set("refcoco", data, recipe="soc", num_frames=1)
    assert len(open_training_set("refcoco", data, recipe="soc", num_frames=1, strict=False)) == 6
    edit_json(path, lambda d: d["annotations"][1].update(iscrowd=0))
    edit_json(path, lambda d: d["images"][0].update(height=50))
    dataset = open_training_set("refcoco", data, recipe="soc", num_frames=1)
    with pytest.raises(InputError, match="image entry 0: annotated as 64x50, the image is 64x48"):
        dataset.clip(0, rng())
    outside = [[100.0, 100.0, 110.0, 100.0, 110.0, 110.0]]
    edit_json(path, lambda d: d["annotations"][2].update(segmentation=outside))
    dataset = open_training_set("refcoco", data, recipe="soc", num_frames=1)
    with pytest.raises(InputError, match="image entry 2: the segmentation covers no pixel"):
        dataset.clip(2, rng())


class _Sliver:
    """A sample whose target the augmentation loses on the first ``lost`` draws of its frames."""

    def __init__(self, lost: int) -> None:
        self.loads = 0
        self.lost = lost
        self.referral = Referral(
            "world/v/0", "the red square", (Path("v/00000.jpg"),), frozenset(), None
        )  # type: ignore[arg-type]

    def load(self, rng: np.random.Generator, strict: bool) -> Raw:
        self.loads += 1
        masks = np.zeros((2, 8, 8), np.bool_)
        masks[:, 2, 2] = self.loads > self.lost
        return Raw(np.zeros((2, 8, 8, 3), np.uint8), masks, np.array([self.loads, self.loads + 1]))


def _identity(frames, masks, caption, rng):
    return frames, masks, caption


def test_a_target_lost_by_the_augmentation_draws_other_frames() -> None:
    sample = _Sliver(lost=3)
    clip = ClipSet("world", [sample], _identity, redraws=2, strict=True).clip(0, rng())
    assert sample.loads == 4 and clip.valid.tolist() == [1, 1]
    never = _Sliver(lost=CLIP_DRAWS)
    with pytest.raises(InputError, match=f"after {CLIP_DRAWS} draws of frames x 2 augmentation"):
        ClipSet("world", [never], _identity, redraws=2, strict=True).clip(0, rng())
    loose = ClipSet("world", [_Sliver(lost=CLIP_DRAWS)], _identity, redraws=2, strict=False)
    assert loose.clip(0, rng()).valid.tolist() == [0, 0]
