"""End to end: the Make chain of the default recipe, from given model runs and propagated runs to a
validated submission.zip.

Given runs are built so that the result can be worked out by hand: soc, mutr and uninext_vith (and
their propagations) are the ground truth, referformer_ft (and its propagations) is empty, and
uninext_convnext is all foreground. Then every vote of the recipe returns the ground truth:
  round 1a (soc, mutr, referformer_ft; >= 3 of 6): object pixels get 4 votes, others 0;
  round 1b (uninext_vith, uninext_convnext, soc; >= 3 of 6): object pixels 6, others 2;
  unpaired expressions take run 0 (soc / uninext_vith): the ground truth;
  round 2 (>= 4 of 8, unpaired >= 3 of 4): three of the four sources are the ground truth.
Round-1 outputs are propagated by the demo's identity stand-in (demo/simulated.py propagate).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from rvos_core.data import Dataset, open_dataset
from rvos_core.masks import quantize_probs
from rvos_core.recipe import load_recipe
from rvos_core.runfolder import RunWriter, VideoResult
from rvos_core.synthetic import (
    VideoSpec,
    expression_masks,
    object_masks,
    write_mevis,
    write_refytvos,
)

ROOT = Path(__file__).resolve().parents[1]
SPECS = [
    VideoSpec("a0000001", expressions=3, frames=4, size=(36, 48)),
    VideoSpec("b0000002", expressions=2, frames=5, size=(30, 40)),
    VideoSpec("c0000003", expressions=1, frames=3, size=(24, 24)),
    VideoSpec("d0000004", expressions=4, frames=2, size=(32, 32)),
]
TRUTH, EMPTY, FULL = "truth", "empty", "full"
MODELS = {
    "soc": TRUTH,
    "mutr": TRUTH,
    "referformer_ft": EMPTY,
    "uninext_vith": TRUTH,
    "uninext_convnext": FULL,
}
RECIPE = load_recipe()  # the default recipe: its graph is data, nothing here repeats it
# a propagation of a model run is given, of the same kind as its model's
PROPAGATED = {
    node.name: MODELS[node.inputs[0]]
    for node in RECIPE.of_kind("propagation")
    if node.inputs[0] in MODELS
}
DOMAIN = {"uninext_vith": "probability", "uninext_convnext": "probability"}


Truth = Callable[[VideoSpec], dict[str, np.ndarray]]


def write_run(
    root: Path,
    dataset: Dataset,
    kind: str,
    domain: str,
    specs: list[VideoSpec] = SPECS,
    truth_of: Truth = expression_masks,
) -> None:
    """A given run of ``kind`` (the truth, empty or full masks) over ``specs``."""
    probs = domain == "probability"
    writer = RunWriter(
        root,
        dataset,
        {"producer": "given", "value_domain": domain, "has_scores": True, "has_probs": probs},
    )
    for spec in specs:
        video = dataset.video(spec.id)
        truth = truth_of(spec)
        masks = {
            e: {TRUTH: m, EMPTY: np.zeros_like(m), FULL: np.ones_like(m)}[kind]
            for e, m in truth.items()
        }
        scores = {
            e: [0.5 + 0.1 * ((t * 7 + int(e)) % 3) for t in range(spec.frames)] for e in masks
        }
        stored = (
            {e: quantize_probs(m.astype(np.float32) * 0.9 + 0.05) for e, m in masks.items()}
            if probs
            else None
        )
        writer.write_video(video, VideoResult(masks=masks, scores=scores, probs=stored))
    assert writer.finalize()


def write_given_runs(
    work: Path, dataset: Dataset, specs: list[VideoSpec] = SPECS, truth_of: Truth = expression_masks
) -> None:
    """The five model runs and five propagated runs of the recipe (MODELS, PROPAGATED), the
    propagated ones newer than the models' so that Make keeps them."""
    for node, kind in MODELS.items():
        write_run(work / node, dataset, kind, DOMAIN.get(node, "logit"), specs, truth_of)
    for node, kind in PROPAGATED.items():
        write_run(work / node, dataset, kind, "binary", specs, truth_of)
    now = time.time()  # inputs of a node must be older than the node for Make to keep it
    for node in MODELS:
        os.utime(work / node / "run.json", (now - 100, now - 100))
    for node in PROPAGATED:
        os.utime(work / node / "run.json", (now - 50, now - 50))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Dataset]:
    tmp = tmp_path_factory.mktemp("chain")
    write_refytvos(tmp / "data", "valid", SPECS)
    dataset = open_dataset("refytvos", tmp / "data", "valid")
    work = tmp / "work"
    write_given_runs(work / "valid", dataset)
    return tmp, work, dataset


def make(
    tmp: Path, work: Path, *targets: str, check: bool = True, dataset: str = "refytvos"
) -> subprocess.CompletedProcess:
    variables = [
        f"DATA={tmp / 'data'}",
        f"WORK={work}",
        "SPLIT=valid",
        f"DATASET={dataset}",
        f"PY={sys.executable}",
        f"PROPAGATE={sys.executable} {ROOT / 'demo' / 'simulated.py'} propagate",
    ]
    return subprocess.run(
        ["make", "-C", str(ROOT), *targets, *variables], capture_output=True, text=True, check=check
    )


def test_submission_from_the_make_chain(chain: tuple[Path, Path, Dataset]) -> None:
    tmp, work, dataset = chain
    result = make(tmp, work, "submission")
    assert set(MODELS) == {node.name for node in RECIPE.of_kind("model")}
    for node in (n.name for n in RECIPE.nodes):
        assert (work / "valid" / node / "run.json").is_file(), result.stdout + result.stderr
    with zipfile.ZipFile(work / "valid" / "submission.zip") as archive:
        names = set(archive.namelist())
        assert len(names) == sum(s.expressions * s.frames for s in SPECS)
        for spec in SPECS:
            video = dataset.video(spec.id)
            for exp_id, truth in expression_masks(spec).items():
                for t, frame in enumerate(video.frames):
                    png = archive.read(f"Annotations/{spec.id}/{exp_id}/{frame}.png")
                    pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
                    assert np.array_equal(pixels == 255, truth[t]), (spec.id, exp_id, frame)
    validate = make(tmp, work, "validate", f"NODE={RECIPE.submission}")
    assert "valid (4 videos" in validate.stdout


def own_objects(spec: VideoSpec) -> dict[str, np.ndarray]:
    """MeViS-style truth: expression e refers to object e % objects, so expressions 0 and 1 (a
    Ref-YouTube-VOS pair) refer to different objects."""
    objects = object_masks(spec)
    return {str(e): objects[e % spec.objects] for e in range(spec.expressions)}


def test_mevis_chain_votes_every_expression_alone(tmp_path: Path) -> None:
    """DATASET=mevis: no pairing. Round 1 (>= 2 of 3: soc and mutr are right, referformer_ft is
    empty; uninext_vith and soc are right, uninext_convnext is full) and round 2 (>= 3 of 4: three
    sources right) give every expression its own object. A pair vote would fuse expressions 0
    and 1 (different objects) and lose both (2 of 6 votes where only one is right). The
    submission has the video folders at the zip root."""
    specs = [VideoSpec("m0000001", expressions=3, frames=3, size=(36, 48))]
    write_mevis(tmp_path / "data", "valid", specs)
    dataset = open_dataset("mevis", tmp_path / "data", "valid")
    work = tmp_path / "work"
    write_given_runs(work / "valid", dataset, specs, own_objects)
    result = make(tmp_path, work, "submission", dataset="mevis", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    video, truths = dataset.video("m0000001"), own_objects(specs[0])
    assert not np.array_equal(truths["0"], truths["1"])
    with zipfile.ZipFile(work / "valid" / "submission.zip") as archive:
        assert len(archive.namelist()) == 3 * 3
        for exp_id, truth in truths.items():
            for t, frame in enumerate(video.frames):
                png = archive.read(f"m0000001/{exp_id}/{frame}.png")
                pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
                assert np.array_equal(pixels == 255, truth[t]), (exp_id, frame)


def test_chain_is_up_to_date_after_a_run(chain: tuple[Path, Path, Dataset]) -> None:
    tmp, work, _ = chain
    make(tmp, work, "submission")
    assert make(tmp, work, "-q", "submission", check=False).returncode == 0


def test_a_removed_node_is_rebuilt_alone(chain: tuple[Path, Path, Dataset]) -> None:
    tmp, work, _ = chain
    make(tmp, work, "submission")
    final = RECIPE.node(RECIPE.submission)
    vote = next(i for i in final.inputs if RECIPE.node(i).kind == "vote")
    before = (work / "valid" / vote / "run.json").stat().st_mtime_ns
    zip_bytes = (work / "valid" / "submission.zip").read_bytes()
    import shutil

    shutil.rmtree(work / "valid" / final.name)
    make(tmp, work, "submission")
    assert (work / "valid" / vote / "run.json").stat().st_mtime_ns == before
    assert (work / "valid" / "submission.zip").read_bytes() == zip_bytes


def test_missing_model_run_is_a_clear_error(tmp_path: Path) -> None:
    write_refytvos(tmp_path / "data", "valid", SPECS[:1])
    result = make(tmp_path, tmp_path / "work", "round1", check=False)
    assert result.returncode != 0
    assert "soc" in result.stdout + result.stderr


def test_missing_data_names_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT),
            "models",
            f"DATA={tmp_path / 'nowhere'}",
            f"WORK={tmp_path / 'w'}",
            f"PY={sys.executable}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"error: {tmp_path / 'nowhere'}: DATA is not a folder" in result.stderr


def test_a_stages_propagations_are_made_by_one_command(
    chain: tuple[Path, Path, Dataset], tmp_path: Path
) -> None:
    """Two of a stage's three AOT propagations removed (and what is made from them): Make rebuilds
    both with one command (JOINT_PAIRS) and keeps the third; the submission is the one that one
    command per removed node gives."""
    import shutil

    tmp, work, _ = chain
    make(tmp, work, "submission")
    first = RECIPE.node(next(n.name for n in RECIPE.of_kind("propagation") if n.producer == "aot"))
    group = [first, *RECIPE.propagated_with(first)]
    assert len(group) >= 3
    removed, kept = group[:2], group[2]
    stale = {n.name for n in removed}
    for node in RECIPE.nodes:  # what is made from them (votes refuse a changed input)
        if stale & set(node.inputs):
            stale.add(node.name)
    joint, alone = tmp_path / "joint", tmp_path / "alone"
    for root in (joint, alone):
        shutil.copytree(work, root)
        for name in stale:
            shutil.rmtree(root / "valid" / name)
    kept_time = (joint / "valid" / kept.name / "run.json").stat().st_mtime_ns
    result = make(tmp, joint, "submission")
    commands = [line for line in result.stdout.splitlines() if " propagate aot " in line]
    assert len(commands) == 1, result.stdout
    for node in removed:
        assert f"{joint / 'valid' / node.name}: 4 videos written" in result.stderr
    assert (joint / "valid" / kept.name / "run.json").stat().st_mtime_ns == kept_time
    assert make(tmp, joint, "-q", "submission", check=False).returncode == 0
    data = ["--data", str(tmp / "data"), "--dataset", "refytvos", "--split", "valid"]
    for node in removed:
        pair = [
            "--run",
            str(alone / "valid" / node.inputs[0]),
            "--out",
            str(alone / "valid" / node.name),
        ]
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "simulated.py"), "propagate", "aot", *pair, *data],
            check=True,
        )
    make(tmp, alone, "submission")
    zips = [(root / "valid" / "submission.zip").read_bytes() for root in (joint, alone)]
    assert zips[0] == zips[1]
