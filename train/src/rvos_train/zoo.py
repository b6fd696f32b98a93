"""``python -m rvos_train.zoo --out zoo --work WORK/zoo``: the tiny zoo (``make zoo``).

Every model of the default recipe and both propagators in their tiny variant, trained from random
weights on the generated referring-video world (``rvos_train.generate --world v2`` with WORLD's
options) with their ``zoo`` configurations (``configs/<name>/zoo.toml``), then shipped as
``<out>/<name>.safetensors`` beside the tokenizers they were trained with (``<out>/pretrained``:
the world's when the zoo has none yet, else the zoo's, which then replace the world's for
training: ``share_tokenizers``) and
``<out>/manifest.json`` (rvos_nn.zoo): the command, the world's options and version, each
network's configuration, seed, steps, CPU seconds of its training, sha256 and the J&F its
shipped weights reach on the world's valid split, through the real drivers:

- a model: ``rvos_nn.infer --zoo <out>`` on Ref-YouTube-VOS valid, scored by
  ``rvos_eval --dataset refytvos`` (MeViS's per-expression protocol on the palette annotations),
  beside the "largest target" baseline (rvos_eval.baselines: exact masks, no words);
- a propagator: propagation from the first frame's ground truth on the DAVIS-style val split
  (rvos_vos.first_frame, one plain view), scored by ``rvos_eval --dataset davis``, beside copying
  the first frame's labels to every frame.

Training runs are ordinary run folders under ``<work>/train/<name>``: the same command resumes an
interrupted zoo, and a finished run (its final ``model.pth``) is not started again. A run's CPU seconds (the training
process and its data workers) are added up in ``<run>/zoo-cpu.json`` over the calls that trained
it. UNINEXT trains and runs in its own environment (``--python-uninext``).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvos_core.atomic import write_json
from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_core.data import open_dataset
from rvos_core.errors import ConfigError
from rvos_eval.baselines import write_largest_target
from rvos_nn.checkpoint import extract_state_dict, read_checkpoint
from rvos_nn.zoo import MANIFEST, VERSION, file_sha256, write_weights
from rvos_train.generate import RECORD, generate

if TYPE_CHECKING:
    from rvos_train.tasks.propagation import Predict

WORLD: dict[str, Any] = {
    "videos": 48,
    "valid_videos": 12,
    "frames": 12,
    "size": (96, 160),
    "seed": 0,
    "world": "v2",
}
MODELS = ("soc", "mutr", "referformer", "uninext_vith", "uninext_convnext")
PROPAGATORS = ("aot", "deaot")
CONFIG = "zoo"
CPU_FILE = "zoo-cpu.json"
SCORE_SPLITS = {"model": ("refytvos", "valid"), "propagator": ("davis", "val")}


def kind_of(name: str) -> str:
    return "propagator" if name in PROPAGATORS else "model"


def build(
    out: Path, work: Path, names: Sequence[str], uninext_python: str, steps: int | None = None
) -> dict[str, Any]:
    """Train (or resume), export and score ``names``; write ``out`` (see the module docstring).
    ``steps``: instead of each configuration's own (smoke tests)."""
    world = generate(work / "world", **WORLD)
    record = json.loads((world / RECORD).read_text())
    out.mkdir(parents=True, exist_ok=True)
    share_tokenizers(world / "pretrained", out / "pretrained")
    entries = _previous_entries(out)
    for name in names:
        python = uninext_python if name.startswith("uninext_") else sys.executable
        run = work / "train" / name
        cpu = train(name, run, world, python, steps)
        entries[name] = export(name, run, out, cpu)
        _write_manifest(out, record, entries)
        entries[name]["jf"] = score(name, out, world / "data", work / "score" / name, python)
        _write_manifest(out, record, entries)
        print(f"zoo: {name}: J&F {entries[name]['jf']['jf']:.3f}, {cpu:.0f} CPU s of training")
    return _write_manifest(out, record, entries)


def train(name: str, run: Path, world: Path, python: str, steps: int | None = None) -> float:
    """Train (or resume) ``name``'s zoo configuration into ``run``; the CPU seconds spent on it
    over every call (this one included)."""
    command = [python, "-m", "rvos_train", name, "--config", CONFIG, "--out", str(run)]
    command += ["--data", str(world / "data"), "--pretrained", str(world / "pretrained")]
    if steps is not None:
        command += ["--set", f"optim.steps={steps}", "--set", "optim.lr_drop=[]"]
    record = run / CPU_FILE
    if (run / "model.pth").is_file() and record.is_file():  # finished (the final weights)
        return json.loads(record.read_text())["cpu_seconds"]
    before = _children_cpu()
    if subprocess.run(command, check=False).returncode != 0:
        raise ConfigError(f"training the zoo's {name} failed (its error is above); rerun resumes")
    spent = _children_cpu() - before
    total = spent + (json.loads(record.read_text())["cpu_seconds"] if record.is_file() else 0.0)
    write_json(record, {"cpu_seconds": round(total, 1)})
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def export(name: str, run: Path, out: Path, cpu_seconds: float) -> dict[str, Any]:
    """``run``'s final weights as ``out/<name>.safetensors`` and the entry of the manifest."""
    source = run / "model.pth"
    _, state = extract_state_dict(read_checkpoint(source), source)
    target = write_weights(state, out / f"{name}.safetensors")
    config = json.loads((run / "config.json").read_text())["config"]  # as the run resolved it
    return {
        "kind": kind_of(name),
        "file": target.name,
        "sha256": file_sha256(target),
        "variant": config["variant"],
        "config": f"{name}/{CONFIG}",
        "seed": config["seed"],
        "steps": config["optim"]["steps"],
        "cpu_seconds": round(cpu_seconds, 1),
    }


def score(name: str, zoo: Path, data: Path, out: Path, python: str) -> dict[str, Any]:
    """J&F of the shipped weights of ``name`` on the world's held-out split (module docstring),
    beside a baseline's: a model's that of the largest target (rvos_eval.baselines), a
    propagator's that of copying the first frame."""
    shutil.rmtree(out, ignore_errors=True)
    dataset, split = SCORE_SPLITS[kind_of(name)]
    if kind_of(name) == "model":
        infer = [python, "-m", "rvos_nn.infer", name, "--zoo", str(zoo)]
        _run([*infer, "--out", str(out / "run"), *_data_args(data, dataset, split)])
        scores = _evaluate(out / "run", data, dataset, split, out / "eval")
        split_data = open_dataset(dataset, data, split)
        baseline = write_largest_target(split_data, out / "largest-target")
        largest = _evaluate(baseline, data, dataset, split, out / "eval-largest-target")
        return {**scores, "largest_target_jf": largest["jf"]}
    from rvos_train.tasks.propagation import copy_first_frame, predict_split

    predict_split(_zoo_propagation(name, zoo), data, split, out / "predictions")
    scores = _evaluate(out / "predictions", data, dataset, split, out / "eval")
    predict_split(copy_first_frame, data, split, out / "copy")
    copied = _evaluate(out / "copy", data, dataset, split, out / "eval-copy")
    return {**scores, "copy_first_frame_jf": copied["jf"]}


def _evaluate(predictions: Path, data: Path, dataset: str, split: str, out: Path) -> dict[str, Any]:
    """``python -m rvos_eval`` on ``predictions``: the dataset, split, J, F and J&F."""
    evaluate = [sys.executable, "-m", "rvos_eval", str(predictions), "--out", str(out)]
    _run([*evaluate, *_data_args(data, dataset, split), "--workers", "1"])
    j, f, jf = _summary_numbers(json.loads((out / "summary.json").read_text()))
    return {"dataset": dataset, "split": split, "j": j, "f": f, "jf": jf}


def _data_args(data: Path, dataset: str, split: str) -> list[str]:
    return ["--data", str(data), "--dataset", dataset, "--split", split]


def _zoo_propagation(name: str, zoo: Path) -> Predict:
    """The zoo's propagator ``name``, loaded strictly, as a first-frame predictor."""
    from rvos_nn.zoo import Zoo
    from rvos_train.tasks.propagation import propagation
    from rvos_vos.propagators import load_propagator

    propagator = load_propagator(name)
    opened = Zoo.open(zoo)
    net = propagator.build(propagator.config(opened.entry(name, "propagator").variant, None))
    propagator.load(net, opened.weights(name, "propagator"))
    return propagation(net.eval(), propagator)


def _summary_numbers(summary: dict[str, Any]) -> tuple[float, float, float]:
    if "global" in summary:
        table = summary["global"]
        return table["J-Mean"], table["F-Mean"], table["J&F-Mean"]
    return summary["J"], summary["F"], summary["J&F"]


def _run(command: list[str]) -> None:
    if subprocess.run(command, check=False, stdout=subprocess.DEVNULL).returncode != 0:
        raise ConfigError(f"{' '.join(command[1:4])} failed (its error is above)")


def share_tokenizers(world: Path, zoo: Path) -> None:
    """One set of tokenizers for every network of the zoo: the zoo's own when it has them (the
    networks already in it were trained with them; the world's are trained anew with each world,
    so a rebuilt network trains with the zoo's), else the world's, copied into the zoo."""
    if zoo.is_dir():
        _copy_tokenizers(zoo, world)
    else:
        _copy_tokenizers(world, zoo)


def _copy_tokenizers(source: Path, target: Path) -> None:
    staged = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(source, staged)
    shutil.rmtree(target, ignore_errors=True)
    staged.rename(target)


def _previous_entries(out: Path) -> dict[str, Any]:
    """Entries of an existing manifest (a zoo rebuilt a network at a time keeps the others)."""
    path = out / MANIFEST
    return json.loads(path.read_text())["entries"] if path.is_file() else {}


def _write_manifest(out: Path, world: dict[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    """``world``: the generator's record (its options and the world's version)."""
    manifest = {
        "version": VERSION,
        "command": "make zoo",
        "world": world,
        "entries": {name: entries[name] for name in sorted(entries)},
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_train.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=path_arg, required=True, help="the zoo folder to write")
    parser.add_argument("--work", type=path_arg, required=True, help="world, runs and scores")
    parser.add_argument(
        "--only", nargs="+", choices=MODELS + PROPAGATORS, help="these networks (default: all)"
    )
    parser.add_argument(
        "--python-uninext", default=sys.executable, help="the UNINEXT environment's python"
    )
    parser.add_argument(
        "--steps", type=int, help="train this many steps instead of the configurations' (tests)"
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    names = args.only or MODELS + PROPAGATORS
    build(args.out, args.work, names, args.python_uninext, args.steps)
    cpu = time.process_time() + _children_cpu()  # this process (propagators' scores) + children
    print(f"zoo: {args.out} in {time.monotonic() - start:.0f} s, {cpu:.0f} CPU s", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
