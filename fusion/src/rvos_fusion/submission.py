"""Package a run as a server submission zip.

* Ref-YouTube-VOS: ``Annotations/<video>/<exp_id>/<frame>.png``;
* MeViS: ``<video>/<exp_id>/<frame>.png`` at the zip root.

Every video, expression and meta frame of the split must be present and a valid mask PNG (mode 'L',
0/255, one size per video); otherwise nothing is written. Members are stored (PNG is already
compressed) in sorted order with a fixed timestamp, so the zip's bytes depend only on its content.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from rvos_core.atomic import atomic_path
from rvos_core.data import Dataset
from rvos_core.errors import InputError
from rvos_core.masks import decode_mask_png
from rvos_core.progress import progress
from rvos_core.runfolder import Run, check_output, require_videos

PREFIX = {"refytvos": "Annotations/", "mevis": ""}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_submission(run: Run, dataset: Dataset, out: Path) -> int:
    """Write ``out`` (a .zip) from ``run``; returns the number of PNG members.

    The zip is written to a temporary beside ``out`` and renamed (rvos_core.atomic): a failure
    leaves nothing, and the temporaries of a killed earlier attempt are removed.
    """
    if dataset.name not in PREFIX:
        raise InputError(None, f"no submission format for dataset {dataset.name!r}")
    require_videos(dataset)
    check_output(out, [run.root])
    run.check_dataset(dataset)
    with atomic_path(out) as tmp:
        return _write_members(run, dataset, PREFIX[dataset.name], tmp)


def _write_members(run: Run, dataset: Dataset, prefix: str, path: Path) -> int:
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for video in progress(dataset, desc="submission", total=len(dataset)):
            shape = None
            for exp_id in video.exp_ids:
                for frame in video.frames:
                    source = run.mask_path(video.id, exp_id, frame)
                    data = _read(source)
                    shape = decode_mask_png(data, source, shape).shape
                    info = zipfile.ZipInfo(f"{prefix}{video.id}/{exp_id}/{frame}.png", _EPOCH)
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
                    count += 1
    return count


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            path, "mask PNG is missing: the run does not cover the whole split"
        ) from None
