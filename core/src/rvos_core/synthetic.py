"""Small generated Ref-YouTube-VOS-style (and MeViS-style) datasets: for tests, benchmarks and the
demo.

Each video holds a few objects (ellipses moving along straight lines over a textured background);
expressions 2i and 2i+1 describe object i (the pairing Ref-YouTube-VOS has), an odd count leaves the
last expression alone on its object. Frames are named like the dataset's (00000, 00005, ...).
Everything is a deterministic function of the arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = ("red", "green", "blue", "yellow", "white", "purple")


@dataclass(frozen=True)
class VideoSpec:
    """One generated video: id, number of expressions, number of frames, frame size (H, W)."""

    id: str
    expressions: int
    frames: int
    size: tuple[int, int]

    @property
    def objects(self) -> int:
        return (self.expressions + 1) // 2

    @property
    def frame_names(self) -> list[str]:
        return [f"{5 * t:05d}" for t in range(self.frames)]


def object_masks(spec: VideoSpec, seed: int = 0) -> np.ndarray:
    """bool [objects, T, H, W]: object i is an ellipse moving on a straight line."""
    rng = np.random.default_rng([seed, *map(ord, spec.id)])
    height, width = spec.size
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    masks = np.zeros((spec.objects, spec.frames, height, width), bool)
    for k in range(spec.objects):
        centre = rng.uniform(0.25, 0.75, 2) * (height, width)
        step = rng.uniform(-0.03, 0.03, 2) * (height, width)
        radii = rng.uniform(0.08, 0.2, 2) * (height, width)
        for t in range(spec.frames):
            cy, cx = centre + t * step
            masks[k, t] = ((yy - cy) / radii[0]) ** 2 + ((xx - cx) / radii[1]) ** 2 <= 1.0
    return masks


def expression_masks(spec: VideoSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Ground truth per expression id: bool [T, H, W] of its object (2i, 2i+1 -> object i)."""
    objects = object_masks(spec, seed)
    return {str(e): objects[e // 2] for e in range(spec.expressions)}


def _meta_entry(spec: VideoSpec) -> dict:
    expressions = {
        str(e): {"exp": f"the {COLOURS[(e // 2) % len(COLOURS)]} blob, take {e % 2 + 1}"}
        for e in range(spec.expressions)
    }
    return {"expressions": expressions, "frames": spec.frame_names}


def _write_frames(folder: Path, spec: VideoSpec, seed: int) -> None:
    objects = object_masks(spec, seed)
    rng = np.random.default_rng([seed, 7, *map(ord, spec.id)])
    background = rng.integers(40, 90, (*spec.size, 3), dtype=np.uint8)
    palette = rng.integers(120, 255, (spec.objects, 3), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for t, name in enumerate(spec.frame_names):
        frame = background.copy()
        for k in range(spec.objects):
            frame[objects[k, t]] = palette[k]
        Image.fromarray(frame).save(folder / f"{name}.jpg", quality=90)


def write_refytvos(
    root: Path, split: str, specs: list[VideoSpec], seed: int = 0, frames: bool = True
) -> Path:
    """Write a Ref-YouTube-VOS-style split under ``root`` (meta, and JPEG frames if asked).

    Returns the benchmark folder (``root/refer_youtube_vos``).
    """
    bench = root / "refer_youtube_vos"
    meta = {"videos": {s.id: _meta_entry(s) for s in specs}}
    meta_file = bench / "meta_expressions" / split / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta, indent=1))
    if frames:
        for spec in specs:
            _write_frames(bench / split / "JPEGImages" / spec.id, spec, seed)
    return bench


def write_mevis(root: Path, split: str, specs: list[VideoSpec], seed: int = 0) -> Path:
    """Write a MeViS-style split without ground truth (``valid``, ``test``) under ``root``: JPEG
    frames and meta_expressions.json (expression e on object e // 2, as above). Returns the
    benchmark folder (``root/mevis``)."""
    bench = root / "mevis"
    videos = {}
    for spec in specs:
        entry = _meta_entry(spec)
        for e, expression in entry["expressions"].items():
            expression.update(obj_id=[int(e) // 2], anno_id=[int(e) // 2])
        videos[spec.id] = entry
        _write_frames(bench / split / "JPEGImages" / spec.id, spec, seed)
    (bench / split / "meta_expressions.json").write_text(json.dumps({"videos": videos}, indent=1))
    return bench
