"""Ref-DAVIS17 as the RVOS code bases convert it (ReferFormer ``tools/data/convert_davis_to_ytvos.py``).

Layout under the benchmark folder (``DATA/ref-davis``)::

    meta_expressions/{train,valid}/meta_expressions.json
    {train,valid}/JPEGImages/<video>/<frame>.jpg
    {train,valid}/Annotations/<video>/<frame>.png    DAVIS Annotations_unsupervised (indexed, 255 = void)

The converter lists a video's expressions object by object, four per object: annotator 1
first-frame, annotator 1 full-video, annotator 2 first-frame, annotator 2 full-video. Expression
``4k + a`` is therefore object k's description in annotator run ``a`` (``anno_0`` .. ``anno_3``);
ReferFormer's ``inference_davis.py`` predicts each run separately and writes object k as label
k + 1. Frames are the sorted JPEG names the meta lists; every listed frame must exist.

Grouping is "none": exp 2i and 2i + 1 describe one object only when the annotators' object lists
line up, which nothing guarantees.
"""

from __future__ import annotations

from pathlib import Path

from rvos_core.data.base import Dataset, Video, build_video, load_json, parse_meta_videos
from rvos_core.errors import InputError

SPLITS = ("train", "valid")
FOLDER_NAMES = ("ref-davis", "ref_davis", "refdavis", "Ref-DAVIS17")
RUNS = ("anno_0", "anno_1", "anno_2", "anno_3")


def find_root(data: Path) -> Path:
    """The Ref-DAVIS17 folder inside DATA (or DATA itself if it holds meta_expressions/)."""
    for candidate in (data, *(data / name for name in FOLDER_NAMES)):
        if (candidate / "meta_expressions").is_dir() and any(
            (candidate / s).is_dir() for s in SPLITS
        ):
            return candidate
    raise InputError(
        data,
        f"no Ref-DAVIS17 here: expected one of {', '.join(FOLDER_NAMES)} holding "
        "meta_expressions/ and train/ or valid/ (ReferFormer's conversion)",
    )


def annotation_dir(dataset: Dataset, video_id: str) -> Path:
    """Folder of the ground-truth PNGs of ``video_id``: ``<root>/<split>/Annotations/<video>``."""
    return dataset.root / dataset.split / "Annotations" / video_id


def annotator_runs(video: Video) -> tuple[tuple[str, ...], ...]:
    """Expression ids of each annotator run, object order: run a holds ids[4k + a], k = 0, 1, ..."""
    ids = video.exp_ids
    return tuple(ids[a :: len(RUNS)] for a in range(len(RUNS)))


def _check_video(video: Video, meta_path: Path) -> None:
    if len(video.expressions) % len(RUNS):
        raise InputError(
            meta_path,
            f"video {video.id} has {len(video.expressions)} expressions; Ref-DAVIS17 needs four per "
            "object (2 annotators x first-frame / full-video)",
        )
    if not video.image_dir.is_dir():
        raise InputError(video.image_dir, f"frame folder of video {video.id} is missing")
    for path in (video.frame_path(frame) for frame in video.frames):
        if not path.is_file():
            raise InputError(path, f"frame listed in the meta of video {video.id} is missing")


def load(data: Path, split: str) -> Dataset:
    """Read split ``split`` of Ref-DAVIS17 found in ``data`` (DATA or the benchmark folder)."""
    if split not in SPLITS:
        raise InputError(None, f"Ref-DAVIS17 has splits {SPLITS}, not {split!r}")
    root = find_root(data)
    path = root / "meta_expressions" / split / "meta_expressions.json"
    videos = parse_meta_videos(load_json(path), path)
    images = root / split / "JPEGImages"
    built = {vid: build_video(vid, videos[vid], images / vid, path) for vid in sorted(videos)}
    for video in built.values():
        _check_video(video, path)
    extra = {"annotations": root / split / "Annotations", "runs": RUNS}
    return Dataset("refdavis", split, root, path, built, grouping="none", extra=extra)
