"""``python -m rvos_report.segment CLIP --text TEXT [--text ...] --out DIR``: segment your own video.

The clip is decoded with PyAV (any container and frame rate) and sampled as Ref-YouTube-VOS is
(6 frames a second: every 5th frame of a 30 fps video; ``--every-frame`` keeps them all). Its
frames and texts become a one-video Ref-YouTube-VOS split (meta_expressions.json, JPEGImages/) in a
temporary run tree, where Make runs the recipe (``--recipe``) or one model (``--model``) with the
checkpoints of CHECKPOINTS, as ``make submission`` would. ``DIR`` receives the masks
(``masks/<exp_id>/<frame>.png``, one expression per text in order) and ``overlay.mp4`` (the frames
with every text's mask side by side); it is written whole or not at all.

Checkpoints are looked up before anything runs: a missing file stops the command with its name
and where to get it. The tiny zoo (``--zoo DIR``, docs/zoo.md: ``manifest.json`` and one
``<name>.safetensors`` per model or propagator, read here with json) stands in for what is
missing, and says so loudly: its masks are not those of the released weights. A model node whose
checkpoint is missing runs ``--zoo DIR`` when the manifest holds its model (``<MODEL>_OPTS``,
without the node's options: the zoo's networks run at their own training size). A missing
propagator checkpoint takes every propagator from the zoo (``PROPAGATE_OPTS``, which all
propagation commands share), so the zoo must hold each propagator of the recipe.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
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
ZOO_MANIFEST = "manifest.json"  # the tiny zoo's (rvos_nn.zoo, docs/zoo.md)
ZOO_VERSION = 1


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
    """The weights of one node or propagator; ``zoo``: the zoo folder when they come from there."""

    owner: str
    path: Path
    zoo: Path | None = None


@dataclass(frozen=True)
class Need:
    """What a model node or a propagator needs: its network, as registered and as the zoo names
    it (a model node's producer, or the propagator), and its checkpoint file under CHECKPOINTS
    (None when its own command checks its weights)."""

    kind: str  # "model" or "propagator"
    network: str
    file: str | None

    @property
    def owner(self) -> str:
        return f"{self.kind} {self.network}"


@dataclass(frozen=True)
class Zoo:
    """A zoo folder as its manifest lists it: entry name -> (kind, file name in the folder)."""

    folder: Path
    entries: dict[str, tuple[str, str]]

    def holds(self, need: Need) -> bool:
        """Whether the manifest has an entry of ``need``'s network and kind."""
        return self.entries.get(need.network, ("", ""))[0] == need.kind

    def weights(self, need: Need) -> Weights:
        """The entry's file of ``need`` (held); a file the manifest names but the folder lacks is
        an InputError."""
        path = self.folder / self.entries[need.network][1]
        if not path.is_file():
            raise InputError(
                path, f"the zoo's weights of {need.owner} are missing ({ZOO_MANIFEST})"
            )
        return Weights(need.owner, path, self.folder)


def read_zoo(folder: Path) -> Zoo:
    """The zoo in ``folder`` through its ``manifest.json``; a missing or malformed manifest is an
    InputError naming it."""
    path = folder / ZOO_MANIFEST
    if not path.is_file():
        raise InputError(path, "the zoo has no manifest (make zoo writes it)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable zoo manifest: {exc}") from None
    valid = isinstance(manifest, dict) and manifest.get("version") == ZOO_VERSION
    entries = manifest.get("entries") if valid else None
    if not isinstance(entries, dict):
        raise InputError(path, f"not a zoo manifest of version {ZOO_VERSION} (with 'entries')")
    return Zoo(folder, {name: zoo_entry(path, name, item) for name, item in entries.items()})


def zoo_entry(path: Path, name: str, item: object) -> tuple[str, str]:
    """(kind, file) of one manifest entry, the file a name in the zoo folder."""
    kind, file = (item.get("kind"), item.get("file")) if isinstance(item, dict) else (None, None)
    if not isinstance(kind, str) or not isinstance(file, str) or Path(file).name != file:
        raise InputError(path, f"entry {name!r} needs a 'kind' and a 'file' named in the folder")
    return kind, file


def model_file(model: str) -> str | None:
    """The checkpoint file of a registered model (its ModelEntry, found through the registry)."""
    return getattr(registry.load(registry.MODELS, model, "model"), "checkpoint_file", None)


def propagator_file(propagator: str) -> str | None:
    """The checkpoint file of a registered propagator (None for a weights folder: SAM trackers)."""
    found = registry.load(registry.PROPAGATORS, propagator, "propagator")
    return getattr(found, "checkpoint_name", None)


def needed(recipe: Recipe) -> dict[str, Need]:
    """node or propagator -> its Need, for every model of the main environment and every
    propagator of the recipe; a model of another environment (UNINEXT) is left to its own command
    and weights that are a folder (SAM 3, the SAM trackers) are checked by their own command when
    it starts (file None)."""
    table = {
        node.name: Need("model", node.producer, model_file(node.producer))
        for node in recipe.of_kind("model")
        if node.environment == "main"
    }
    table.update({p: Need("propagator", p, propagator_file(p)) for p in recipe.propagators()})
    return table


def find_weights(table: dict[str, Need], checkpoints: Path, zoo: Zoo | None) -> dict[str, Weights]:
    """The weights of every entry of ``table`` with a file: under ``checkpoints``, else the zoo's
    (``from_zoo``). Every file found nowhere is named in one ConfigError."""
    found = {
        name: Weights(need.owner, checkpoints / need.file)
        for name, need in table.items()
        if need.file is not None and (checkpoints / need.file).is_file()
    }
    missing = {n: need for n, need in table.items() if need.file is not None and n not in found}
    if zoo is not None:
        found.update(from_zoo(table, missing, zoo))
    unmet = [
        f"{checkpoints / n.file} ({n.owner})" for name, n in missing.items() if name not in found
    ]
    if unmet:
        raise ConfigError(
            f"missing checkpoint: {'; '.join(unmet)}. {WHERE_TO_GET}"
            + ("" if zoo is None else zoo_shortfall(table, zoo))
        )
    return found


def from_zoo(table: dict[str, Need], missing: dict[str, Need], zoo: Zoo) -> dict[str, Weights]:
    """The zoo's stand-ins: a missing model's own entry; every propagator of ``table`` when one is
    missing and the zoo holds them all (one PROPAGATE_OPTS serves every propagation)."""
    chosen = {
        name: zoo.weights(need)
        for name, need in missing.items()
        if need.kind == "model" and zoo.holds(need)
    }
    propagators = {name: need for name, need in table.items() if need.kind == "propagator"}
    wanted = any(need.kind == "propagator" for need in missing.values())
    if wanted and all(zoo.holds(need) for need in propagators.values()):
        chosen.update({name: zoo.weights(need) for name, need in propagators.items()})
    return chosen


def zoo_shortfall(table: dict[str, Need], zoo: Zoo) -> str:
    """Why the zoo could not stand in, for the missing-checkpoint error."""
    propagators = sorted({need.network for need in table.values() if need.kind == "propagator"})
    return (
        f"; the zoo {zoo.folder} does not stand in for them: its {ZOO_MANIFEST} needs an entry "
        "of each missing model, and of every propagator of the recipe "
        f"({', '.join(propagators) or 'none'}) for a missing propagator"
    )


def zoo_banner(weights: dict[str, Weights]) -> str | None:
    """The loud note printed when the zoo stands in for released checkpoints."""
    used = [f"{w.owner}: {w.path}" for w in weights.values() if w.zoo is not None]
    if not used:
        return None
    rule = "!" * 78
    lines = [
        rule,
        "THE TINY ZOO STANDS IN FOR MISSING CHECKPOINTS: these masks are NOT those of",
        "the released weights (small networks trained on generated videos, docs/zoo.md):",
        *used,
        rule,
    ]
    return "\n".join(lines)


def make_variables(recipe: Recipe, weights: dict[str, Weights]) -> list[str]:
    """Make variables that run the zoo's networks: ``<MODEL>_OPTS=--zoo DIR`` for a model node
    from the zoo (without the node's options: the zoo's networks run at their own training size),
    ``PROPAGATE_OPTS=--zoo DIR`` when the propagators come from it."""
    variables = []
    for node in recipe.of_kind("model"):
        folder = zoo_of(weights, node.name)
        if folder is not None:
            variables.append(f"{node.producer.upper()}_OPTS=--zoo {shlex.quote(str(folder))}")
    folders = [zoo_of(weights, p) for p in recipe.propagators()]
    folder = next((f for f in folders if f is not None), None)
    if folder is not None:
        variables.append(f"PROPAGATE_OPTS=--zoo {shlex.quote(str(folder))}")
    return variables


def zoo_of(weights: dict[str, Weights], name: str) -> Path | None:
    """The zoo folder that ``name``'s weights come from (None: CHECKPOINTS, or none needed)."""
    chosen = weights.get(name)
    return None if chosen is None else chosen.zoo


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
        "--zoo", type=path_arg, help="the tiny zoo (docs/zoo.md): stands in for missing checkpoints"
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
    zoo = None if args.zoo is None else read_zoo(args.zoo.absolute())
    weights = find_weights(needed(recipe), load_paths().checkpoints, zoo)
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
    note = " (tiny zoo weights)" if any(w.zoo is not None for w in weights.values()) else ""
    print(f"masks and overlay video of {len(args.text)} texts{note}: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_body, argv)


if __name__ == "__main__":
    sys.exit(main())
