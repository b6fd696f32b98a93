"""``python -m rvos_report.segment CLIP --text TEXT [--text ...] --out DIR``: segment your own video.

The clip is decoded with PyAV (any container and frame rate) and sampled as Ref-YouTube-VOS is
(6 frames a second: every 5th frame of a 30 fps video; ``--every-frame`` keeps them all). Its
frames and texts become a one-video Ref-YouTube-VOS split (meta_expressions.json, JPEGImages/) in a
temporary run tree, where Make runs the recipe (``--recipe``) or one model (``--model``) with the
checkpoints of CHECKPOINTS, as ``make submission`` would. ``DIR`` receives the masks
(``masks/<exp_id>/<frame>.png``, one expression per text in order) and ``overlay.mp4`` (the frames
with every text's mask side by side); it is written whole or not at all.

Checkpoints are looked up before anything runs: a missing file stops the command with its name
and where to get it. A zoo of small trained weights (``--zoo DIR``: files named as under
CHECKPOINTS, of each model's ``tiny`` variant) stands in for a missing model checkpoint, and says
so loudly: its masks are not those of the released weights.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_core import registry
from rvos_core.atomic import replace_dir, write_json
from rvos_core.cli import path_arg, run_main, text_arg
from rvos_core.command import Parser
from rvos_core.data import open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.paths import load_paths
from rvos_core.recipe import DEFAULT, Recipe, load_recipe
from rvos_core.runfolder import Run
from rvos_report import render
from rvos_report.mp4 import decode_video, frame_rate, write_mp4

SAMPLED_FPS = 6.0  # Ref-YouTube-VOS: every 5th frame of its 30 fps videos
SPLIT = "valid"
WHERE_TO_GET = "README.md, section 'Checkpoints and tokenizers', gives the link of each file"


def frame_step(fps: float | None, every_frame: bool) -> int:
    """Keep every n-th decoded frame: 6 a second (every 5th at 30 fps), or all of them."""
    if every_frame:
        return 1
    return 5 if fps is None else max(1, round(fps / SAMPLED_FPS))


def video_id(clip: Path) -> str:
    """A safe video id from the clip's file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", clip.stem).strip("_") or "video"


def write_dataset(clip: Path, texts: Sequence[str], data: Path, every_frame: bool) -> float:
    """Write the clip as a one-video Ref-YouTube-VOS split ``valid`` under ``data``; frames are
    named by their index in the clip (00000, 00005, ... as the dataset names them).

    Returns the frame rate of the sampled frames.
    """
    fps = frame_rate(clip)
    step = frame_step(fps, every_frame)
    vid = video_id(clip)
    bench = data / "refer_youtube_vos"
    folder = bench / SPLIT / "JPEGImages" / vid
    folder.mkdir(parents=True)
    names = []
    for frame in decode_video(clip):
        if frame.index % step == 0:
            names.append(f"{frame.index:05d}")
            Image.fromarray(frame.rgb).save(folder / f"{names[-1]}.jpg", quality=95)
    if not names:
        raise InputError(clip, "holds no video frames")
    expressions = {str(i): {"exp": text} for i, text in enumerate(texts)}
    meta = {"videos": {vid: {"expressions": expressions, "frames": names}}}
    write_json(bench / "meta_expressions" / SPLIT / "meta_expressions.json", meta)
    return (fps or SAMPLED_FPS * step) / step


def one_model_recipe(model: str, folder: Path) -> Path:
    """A recipe of one model run (the model's node of the default recipe when it has one, with
    its options and environment), written under ``folder``."""
    shipped = next((n for n in load_recipe(DEFAULT).of_kind("model") if n.producer == model), None)
    lines = [f'description = "make segment: model {model}"', f'submission = "{model}"']
    lines += ["[[nodes]]", f'name = "{model}"', 'stage = "models"', f'model = "{model}"']
    if shipped is not None:
        options = ", ".join(f'{k} = "{v}"' for k, v in shipped.options.items())
        lines += [f"options = {{ {options} }}", f'environment = "{shipped.environment}"']
    path = folder / f"segment-{model}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Weights:
    """The checkpoint of one node: ``zoo`` when a zoo file stands in for the missing one."""

    owner: str
    path: Path
    zoo: bool = False


def model_file(model: str) -> str | None:
    """The checkpoint file of a registered model (its ModelEntry, found through the registry)."""
    return getattr(registry.load(registry.MODELS, model, "model"), "checkpoint_file", None)


def propagator_file(propagator: str) -> str | None:
    """The checkpoint file of a registered propagator (None for a weights folder: SAM trackers)."""
    found = registry.load(registry.PROPAGATORS, propagator, "propagator")
    return getattr(found, "checkpoint_name", None)


def needed(recipe: Recipe) -> dict[str, tuple[str, str | None]]:
    """node or propagator -> (what it is, its checkpoint file under CHECKPOINTS) for every model
    of the main environment and every propagator of the recipe; a model of another environment
    (UNINEXT) and weights that are a folder (SAM 3, the SAM trackers) are checked by their own
    command when it starts (file None)."""
    table = {
        node.name: (f"model {node.producer}", model_file(node.producer))
        for node in recipe.of_kind("model")
        if node.environment == "main"
    }
    table.update({p: (f"propagator {p}", propagator_file(p)) for p in recipe.propagators()})
    return table


def find_weights(
    table: dict[str, tuple[str, str | None]],
    checkpoints: Path,
    zoo: Path | None,
    models: Iterable[str],
) -> dict[str, Weights]:
    """The checkpoint of every entry of ``table``: under ``checkpoints``, else (a model only) the
    zoo's file of the same name. Every file found nowhere is named in one ConfigError."""
    found, missing = {}, []
    for name, (owner, file) in table.items():
        if file is None:
            continue
        if (checkpoints / file).is_file():
            found[name] = Weights(owner, checkpoints / file)
        elif zoo is not None and name in models and (zoo / file).is_file():
            found[name] = Weights(owner, zoo / file, zoo=True)
        else:
            missing.append(f"{checkpoints / file} ({owner})")
    if missing:
        raise ConfigError(
            "missing checkpoint: "
            + "; ".join(missing)
            + f". {WHERE_TO_GET}"
            + ("" if zoo is None else f"; the zoo {zoo} has no file of that name either")
        )
    return found


def zoo_banner(weights: dict[str, Weights]) -> str | None:
    """The loud note printed when a zoo file stands in for a released checkpoint."""
    used = [f"{w.owner}: {w.path}" for w in weights.values() if w.zoo]
    if not used:
        return None
    rule = "!" * 78
    lines = [
        rule,
        "THE TINY ZOO STANDS IN FOR MISSING CHECKPOINTS: these masks are NOT those of",
        "the released weights (variant tiny, small trained models):",
        *used,
        rule,
    ]
    return "\n".join(lines)


def make_variables(recipe: Recipe, weights: dict[str, Weights]) -> list[str]:
    """Make variables that hand each model run its zoo checkpoint (``<MODEL>_OPTS``, keeping the
    node's options)."""
    variables = []
    for node in recipe.of_kind("model"):
        chosen = weights.get(node.name)
        if chosen is not None and chosen.zoo:
            options = " ".join(f"--option {k}={v}" for k, v in node.options.items())
            value = f"--checkpoint {chosen.path} --variant tiny {options}".strip()
            variables.append(f"{node.producer.upper()}_OPTS={value}")
    return variables


def run_recipe(make: Sequence[str], recipe: Recipe, tree: Path, variables: Sequence[str]) -> Path:
    """Make the recipe's submitted node in ``tree`` (data/, work/); returns its run folder."""
    work = tree / "work"
    target = work / SPLIT / recipe.submission / "run.json"
    command = [*make, str(target), f"DATA={tree / 'data'}", f"WORK={work}", f"SPLIT={SPLIT}"]
    command += [f"RECIPE={recipe.source}", "DATASET=refytvos", *variables]
    if subprocess.run(command, check=False).returncode != 0:
        raise ConfigError(f"the recipe {recipe.name} failed on the clip (its error is above)")
    return target.parent


def write_outputs(run: Path, data: Path, out: Path, fps: float, tile_width: int) -> None:
    """The run's masks as ``out/masks/<exp_id>/<frame>.png`` and ``out/overlay.mp4``."""
    video = next(iter(open_dataset("refytvos", data, SPLIT)))
    source = Run(run)
    shutil.copytree(run / "Annotations" / video.id, out / "masks")
    masks = [source.masks(video, exp_id) for exp_id in video.exp_ids]
    frames = (
        render.side_by_side(
            [overlay_tile(video.frame_path(name), m[t], i, tile_width) for i, m in enumerate(masks)]
        )
        for t, name in enumerate(video.frames)
    )
    write_mp4(out / "overlay.mp4", frames, fps)


def overlay_tile(frame: Path, mask: np.ndarray, index: int, width: int) -> np.ndarray:
    """One text's tile of one frame: uint8 [h, width, 3]."""
    rgb = np.asarray(Image.open(frame).convert("RGB"))
    size = render.tile_size(rgb.shape[:2], width)
    small = render.scale_frame(rgb, size)
    return render.overlay(small, render.scale_mask(mask, size), render.colour(index))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_report.segment", description=__doc__)
    parser.add_argument("clip", type=path_arg, help="the video file (any format FFmpeg reads)")
    parser.add_argument(
        "--text",
        type=text_arg,
        action="append",
        required=True,
        help="a referring expression (repeat for more)",
    )
    parser.add_argument("--out", type=path_arg, required=True, help="the folder to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--recipe", default=DEFAULT, help=f"recipe name or .toml (default {DEFAULT})"
    )
    which.add_argument("--model", help="one registered model instead of a recipe")
    parser.add_argument(
        "--every-frame", action="store_true", help="keep every frame (default: 6 a second)"
    )
    parser.add_argument(
        "--zoo", type=path_arg, help="small trained weights that stand in for missing checkpoints"
    )
    parser.add_argument("--make", default="make", help="the Make command (default: make)")
    parser.add_argument("--tile-width", type=int, default=480, help="overlay video tile width")
    return parser


def segment(args: argparse.Namespace, tree: Path) -> tuple[Path, float, dict[str, Weights]]:
    """Check the clip and the checkpoints, write the clip's split and run the recipe in ``tree``."""
    frame_rate(args.clip)  # an unreadable clip stops the command before anything is looked up
    recipe = load_recipe(
        args.recipe if args.model is None else str(one_model_recipe(args.model, tree))
    )
    models = [n.name for n in recipe.of_kind("model")]
    weights = find_weights(needed(recipe), load_paths().checkpoints, args.zoo, models)
    banner = zoo_banner(weights)
    if banner:
        print(banner, file=sys.stderr)
    fps = write_dataset(args.clip, args.text, tree / "data", args.every_frame)
    run = run_recipe(shlex.split(args.make), recipe, tree, make_variables(recipe, weights))
    return run, fps, weights


def _body(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.zoo is not None and not args.zoo.is_dir():
        raise InputError(args.zoo, "--zoo is not a folder")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{args.out.name}.", dir=args.out.parent) as tmp:
        tree = Path(tmp)
        run, fps, weights = segment(args, tree)
        staged = tree / "out"
        write_outputs(run, tree / "data", staged, fps, args.tile_width)
        replace_dir(staged, args.out)
    note = " (tiny zoo weights)" if any(w.zoo for w in weights.values()) else ""
    print(f"masks and overlay video of {len(args.text)} texts{note}: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)


if __name__ == "__main__":
    sys.exit(main())
