"""Helpers of the rvos_vos tests: tiny networks from the parity fixtures, a dataset and an input
run built from a fixture clip, checkpoint files in the upstream container layout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_core.testing import parity_dir
from rvos_vos import parity
from rvos_vos.network import PropagationNet
from rvos_vos.parity import fixture_network, fixture_views
from rvos_vos.propagators import load_propagator
from rvos_vos.views import make_views

SPLIT = "valid"
# Labels are compared where the stored averaged probability has top-1 - top-2 above this (READMEs).
MARGIN = 1e-4


@cache
def load_pt(name: str, file: str) -> Any:
    return torch.load(parity_dir(name) / file, weights_only=True)


@cache
def fixture_config(name: str) -> dict[str, Any]:
    return json.loads((parity_dir(name) / "config.json").read_text())


def clip_length(name: str) -> int:
    """Frames of the fixture clip."""
    return len(load_pt(name, "clip.pt")["frame_names"])


def upstream_config(name: str) -> dict[str, Any]:
    """The fixture's network config in the layout ``NetConfig.from_upstream`` reads."""
    cfg = fixture_config(name)
    return {
        **cfg["cfg_dump_bidirectional_run"],
        "swin": cfg["tiny_vs_full"]["swin_encoder"]["tiny"],
    }


def tiny_net(name: str) -> PropagationNet:
    """The fixture's tiny network with its weights (strict load)."""
    return fixture_network(name, parity_dir(name))


def write_checkpoint(name: str, path: Path, prefix: str = "module.") -> Path:
    """The fixture weights in the upstream trainer's container, keys prefixed like DDP saves."""
    state = {prefix + k: v for k, v in load_pt(name, "state_dict.pt").items()}
    torch.save({"state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return path


def write_config(name: str, path: Path) -> Path:
    path.write_text(json.dumps(upstream_config(name)))
    return path


def write_clip_dataset(root: Path, name: str, videos: dict[str, int]) -> Dataset:
    """A Ref-YouTube-VOS split whose videos all show the fixture clip.

    Args:
        videos: video id -> number of expressions. Frames are stored losslessly (PNG bytes under
            the .jpg names: OpenCV and Pillow read by content), as the fixture's run did.
    """
    clip = load_pt(name, "clip.pt")
    bench = root / "refer_youtube_vos"
    meta = {
        "videos": {
            vid: {
                "frames": list(clip["frame_names"]),
                "expressions": {str(e): {"exp": f"object {e}"} for e in range(count)},
            }
            for vid, count in videos.items()
        }
    }
    meta_file = bench / "meta_expressions" / SPLIT / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True)
    meta_file.write_text(json.dumps(meta))
    for vid in videos:
        folder = bench / SPLIT / "JPEGImages" / vid
        folder.mkdir(parents=True)
        for frame, rgb in zip(clip["frame_names"], clip["frames_rgb_uint8"].numpy(), strict=True):
            ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
            assert ok
            (folder / f"{frame}.jpg").write_bytes(data.tobytes())
    return open_dataset("refytvos", root, SPLIT)


def write_input_run(
    root: Path,
    dataset: Dataset,
    masks: dict[str, dict[str, np.ndarray]],
    keys: dict[str, dict[str, int]],
) -> Run:
    """A complete input run: per video and expression, bool masks [T, H, W] and a key frame.

    Scores peak at the key frame (so the derived key_frame.json holds ``keys``).
    """
    writer = RunWriter(
        root,
        dataset,
        {"producer": "test", "value_domain": "binary", "has_scores": True, "has_probs": False},
    )
    for video in dataset:
        count = len(video.frames)
        scores = {
            e: [1.0 if t == keys[video.id][e] else 0.1 * t / count for t in range(count)]
            for e in video.exp_ids
        }
        writer.write_video(video, VideoResult(masks=masks[video.id], scores=scores))
    assert writer.finalize()
    return Run(root)


@dataclass
class Setup:
    """A dataset of fixture clips, an input run, a checkpoint and a config for one propagator."""

    name: str
    root: Path
    dataset: Dataset
    run: Run
    checkpoint: Path
    config: Path
    trace: dict

    def argv(self, out: Path, *extra: str) -> list[str]:
        return [
            self.name,
            "--checkpoint", str(self.checkpoint),
            "--run", str(self.run.root),
            "--out", str(out),
            "--data", str(self.root / "data"),
            "--dataset", "refytvos",
            "--split", "valid",
            "--config", str(self.config),
            "--long-term-gap", str(self.trace["long_term_mem_gap"]),
            "--scales", *(str(s) for s in sorted({v["scale"] for v in self.trace["views"]})),
            "--max-size", str(fixture_config(self.name)["procedure"]["TEST_MAX_SIZE"]),
            *(() if any(v["flip"] for v in self.trace["views"]) else ("--no-flip",)),
            *extra,
        ]  # fmt: skip


def make_setup(
    name: str, root: Path, videos: dict[str, int], keys: dict[str, dict[str, int]]
) -> Setup:
    """Expression '0' of each video gets the trace's key mask, '1' an empty one, others the
    trace's key mask too; non-key frames hold random masks (only the fallback reads them)."""
    trace = load_pt(name, "trace_bidirectional.pt")
    dataset = write_clip_dataset(root / "data", name, videos)
    key_mask = trace["key_mask"].numpy().astype(bool)
    rng = np.random.default_rng(7)
    masks = {}
    for video in dataset:
        count = len(video.frames)
        masks[video.id] = {}
        for exp_id in video.exp_ids:
            exp_masks = rng.random((count, *key_mask.shape)) > 0.7
            exp_masks[keys[video.id][exp_id]] = key_mask if exp_id != "1" else False
            masks[video.id][exp_id] = exp_masks
    run = write_input_run(root / "in", dataset, masks, keys)
    return Setup(
        name,
        root,
        dataset,
        run,
        write_checkpoint(name, root / f"{name}.pth"),
        write_config(name, root / "config.json"),
        trace,
    )


def free_running_labels(name: str, trace: dict) -> dict[int, torch.Tensor]:
    """The library procedure run free on the fixture clip as the command reads it (frames decoded
    to float32 RGB, views made by ``make_views``): frame -> label, in prediction order."""
    fixture = parity_dir(name)
    views = fixture_views(fixture, trace)
    clip = load_pt(name, "clip.pt")["frames_rgb_uint8"].numpy().astype(np.float32)
    return parity.free_running_labels(
        fixture, trace, tiny_net(name), load_propagator(name), lambda t: make_views(clip[t], views)
    )


def sure_pixels(trace: dict, t: int) -> np.ndarray | bool:
    """Where the stored averaged probability decides the label (margin > 1e-4)."""
    step = next(s for p in trace["passes"] for s in p["steps"] if s["frame"] == t)
    if "avg_prob" in step:
        top = step["avg_prob"].topk(2, dim=0).values
        return (top[0] - top[1] > MARGIN).numpy()
    return step["min_top2_margin"] > MARGIN
