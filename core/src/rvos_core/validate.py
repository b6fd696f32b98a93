"""``python -m rvos_core.validate RUN``: check a run folder against its dataset split.

Checks that the run is complete (run.json), made for this split, and has every video, expression
and listed frame as an 8-bit mode-'L' PNG holding only 0 and 255 at the frame size, valid scores,
key frames and probabilities. When the split's frames are present, each listed frame must also
decode in full (a truncated JPEG is a problem) at one size per video, the size the masks must have.
Prints every problem (up to --max-problems) and exits 1 if there is any.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from rvos_core.startup import single_threaded_blas

single_threaded_blas()  # a command module: before NumPy is imported

import numpy as np  # noqa: E402

from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main  # noqa: E402
from rvos_core.command import Parser  # noqa: E402
from rvos_core.data import Dataset, Video  # noqa: E402
from rvos_core.data.base import decoded_size  # noqa: E402
from rvos_core.errors import InputError  # noqa: E402
from rvos_core.progress import progress  # noqa: E402
from rvos_core.runfolder import Run, key_frame_index  # noqa: E402


def _frame_size(video: Video) -> tuple[int, int] | None:
    """The video's frame size from its first JPEG; None when the frames are not present or the
    first is unreadable (_check_frames reports it)."""
    try:
        return video.frame_size_if_present()
    except InputError:
        return None


def _check_frames(video: Video, size: tuple[int, int] | None) -> Iterator[str]:
    """Every listed frame decodes in full at ``size`` (nothing to check without frames)."""
    if not video.frame_path(video.frames[0]).is_file():
        return
    for path in map(video.frame_path, video.frames):
        try:
            found = decoded_size(path)
        except InputError as exc:
            yield str(exc)
            continue
        if size is not None and found != size:
            yield f"{path}: frame is {found[0]}x{found[1]}, the video's first is {size[0]}x{size[1]}"


def _check_masks(run: Run, video: Video, shape: tuple[int, int] | None) -> Iterator[str]:
    for exp_id in video.exp_ids:
        for t in range(len(video.frames)):
            try:
                shape = run.mask_frame(video, exp_id, t, shape).shape
            except InputError as exc:
                yield str(exc)


def _check_scores(run: Run, video: Video, key_frames: dict) -> Iterator[str]:
    try:
        scores = run.scores(video)
    except InputError as exc:
        yield str(exc)
        return
    for exp_id in video.exp_ids:
        stored = (
            key_frames.get(video.id, {}).get(exp_id, {}).get("index_info", {}).get("class_index")
        )
        if stored != key_frame_index(scores[exp_id]):
            yield f"{run.root / 'key_frame.json'}: {video.id}/{exp_id} is {stored!r}, scores say {key_frame_index(scores[exp_id])}"


def _check_probs(run: Run, video: Video, shape: tuple[int, int] | None) -> Iterator[str]:
    try:
        with run.open_probs(video) as reader:
            for exp_id in video.exp_ids:
                reader.frame(exp_id, 0, shape)
    except InputError as exc:
        yield str(exc)


def _extra_videos(run: Run, dataset: Dataset) -> Iterator[str]:
    folder = run.root / "Annotations"
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for name in sorted(present - set(dataset.videos)):
        yield f"{folder / name}: video is not in {dataset.name}/{dataset.split}"


def problems(run: Run, dataset: Dataset) -> Iterator[str]:
    """Every problem of ``run`` with respect to ``dataset``, video by video."""
    run.check_dataset(dataset)
    key_frames = json.loads((run.root / "key_frame.json").read_text()) if run.has_scores else {}
    yield from _extra_videos(run, dataset)
    for video in progress(dataset, desc=f"validate {run.name}", total=len(dataset)):
        size = _frame_size(video)
        yield from _check_frames(video, size)
        yield from _check_masks(run, video, size)
        if run.has_scores:
            yield from _check_scores(run, video, key_frames)
        if run.has_probs:
            yield from _check_probs(run, video, size)


def _body(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_core.validate", description=__doc__)
    parser.add_argument("run", type=path_arg, help="the run folder to check")
    parser.add_argument("--max-problems", type=int, default=50)
    add_dataset_args(parser)
    args = parser.parse_args(argv)
    run, dataset = Run(args.run), dataset_from_args(args)
    found = 0
    for problem in problems(run, dataset):
        found += 1
        if found <= args.max_problems:
            print(problem)
    masks = int(np.sum([len(v.exp_ids) * len(v.frames) for v in dataset]))
    if found:
        print(f"{args.run}: {found} problems")
        return 1
    print(f"{args.run}: valid ({len(dataset)} videos, {masks} masks)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
