"""Parity with the upstream fusion stages ($RVOS_PARITY_DIR/fusion, produced by the upstream scripts).

Everything is read from the fixture's MANIFEST.json and folders; nothing depends on its particular
videos or values. Masks are compared bit-exactly (decoded pixels), key frames as parsed JSON.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fusion_testlib import voted

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import Run
from rvos_core.testing import parity_dir
from rvos_fusion.importers import import_png, import_pth
from rvos_fusion.submission import write_submission
from rvos_fusion.vote import VoteConfig

pytestmark = pytest.mark.parity

ROUND1 = {  # upstream test_swap_1.py / test_swap_2.py: output folder -> model list (model 0 = reference)
    "soc_mutr_referft": ("soc", "mutr", "referformer_ft"),
    "vit_convnext_soc": ("vit_huge", "convnext", "soc"),
}
ROUND2 = {  # upstream test_ensemble_1.py / test_ensemble_2.py: output folder -> source folders
    "Annotations_en2": (
        "soc_mutr_referft/Annotations_AOT_class_index",
        "soc/Annotations_AOT_class_index",
        "mutr/Annotations_AOT_class_index",
        "referformer_ft/Annotations_AOT_class_index",
    ),
    "Annotations_vit_convnext_soc_deaot_vitdeaot_en2_referftdeaot": (
        "vit_convnext_soc/Annotations_DEAOT_class_index",
        "vit-huge/Annotations_DEAOT_class_index",
        "second_ensemble/Annotations_en2",
        "referformer_ft/Annotations_DEAOT_class_index",
    ),
}
FINAL = "Annotations_vit_convnext_soc_deaot_vitdeaot_en2_referftdeaot"


@pytest.fixture(scope="module")
def fixture() -> Path:
    return parity_dir("fusion")


@pytest.fixture(scope="module")
def manifest(fixture: Path) -> dict:
    return json.loads((fixture / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def dataset(fixture: Path) -> Dataset:
    return open_dataset("refytvos", fixture / "inputs", "test")


@pytest.fixture(scope="module")
def model_runs(
    tmp_path_factory: pytest.TempPathFactory, fixture: Path, manifest: dict, dataset: Dataset
) -> dict[str, Run]:
    """Every model's upstream .pth imported as a run folder (split-pth)."""
    root = tmp_path_factory.mktemp("models")
    runs = {}
    for name, info in manifest["models"].items():
        assert import_pth([fixture / info["pth"]], info["mask_logits_domain"], dataset, root / name)
        runs[name] = Run(root / name)
    return runs


def masks_of(run: Run, dataset: Dataset) -> dict[str, np.ndarray]:
    return {f"{v.id}/{e}": run.masks(v, e) for v in dataset for e in v.exp_ids}


def assert_masks_equal(run: Run, dataset: Dataset, npz: Path) -> None:
    expected = np.load(npz)
    ours = masks_of(run, dataset)
    assert sorted(ours) == sorted(expected.files)
    for key in expected.files:
        assert ours[key].shape == expected[key].shape, key
        assert np.array_equal(ours[key], expected[key]), (
            f"{key}: {int((ours[key] != expected[key]).sum())} pixels differ"
        )


def key_frame_table(run: Run) -> dict[str, dict[str, int]]:
    return {
        v: {e: d["index_info"]["class_index"] for e, d in x.items()}
        for v, x in run.key_frames().items()
    }


def round1_config(compat: bool = False) -> VoteConfig:
    return VoteConfig(
        min_votes=3,
        grouping="pairs",
        unpaired="reference",
        key_frames_from=0,
        compat_unpaired_sigmoid=compat,
    )


def test_key_frames_of_every_model(
    model_runs: dict[str, Run], manifest: dict, fixture: Path
) -> None:
    expected = json.loads((fixture / "expected" / "keyframes.json").read_text())
    for name, info in manifest["models"].items():
        assert key_frame_table(model_runs[name]) == expected[info["folder"]], name


def test_imported_masks_are_upstream_binarisation(
    model_runs: dict[str, Run], manifest: dict, fixture: Path, dataset: Dataset
) -> None:
    """An imported run's masks equal the upstream model's own Annotations PNGs (same binarisation)."""
    for name, info in manifest["models"].items():
        assert_masks_equal(
            model_runs[name],
            dataset,
            fixture / "inputs" / "npz" / f"{info['folder']}__Annotations.npz",
        )


def test_chunked_import_equals_whole(
    tmp_path: Path, fixture: Path, manifest: dict, dataset: Dataset, model_runs: dict[str, Run]
) -> None:
    """Import from upstream's chunk files (membership of expected/model_split.json) gives the same run."""
    split = json.loads((fixture / "expected" / "model_split.json").read_text())["chunks"]
    for name, chunks in split.items():
        info = manifest["models"][name]
        whole = torch.load(fixture / info["pth"], map_location="cpu", weights_only=True)
        files = []
        for chunk_name, videos in chunks.items():
            torch.save({v: whole[v] for v in videos}, tmp_path / chunk_name)
            files.append(tmp_path / chunk_name)
        assert import_pth(files, info["mask_logits_domain"], dataset, tmp_path / f"{name}_chunks")
        chunked = Run(tmp_path / f"{name}_chunks")
        assert masks_of(chunked, dataset).keys() == masks_of(model_runs[name], dataset).keys()
        for video in dataset:
            assert chunked.scores(video) == model_runs[name].scores(video)
            for exp_id in video.exp_ids:
                assert np.array_equal(
                    chunked.probs(video, exp_id), model_runs[name].probs(video, exp_id)
                )


@pytest.mark.parametrize("node", sorted(ROUND1))
def test_round1_compat_matches_upstream(
    node: str, model_runs: dict[str, Run], dataset: Dataset, fixture: Path, tmp_path: Path
) -> None:
    run = voted(
        [model_runs[m] for m in ROUND1[node]], dataset, round1_config(compat=True), tmp_path / node
    )
    assert_masks_equal(run, dataset, fixture / "expected" / "npz" / f"{node}__Annotations.npz")
    expected = json.loads((fixture / "expected" / "keyframes.json").read_text())[node]
    assert key_frame_table(run) == expected


def test_round1_default_fixes_unpaired_bug(
    model_runs: dict[str, Run], dataset: Dataset, fixture: Path, tmp_path: Path
) -> None:
    """By default the unpaired expression uses the reference run's own rule (README: derived target)."""
    run = voted(
        [model_runs[m] for m in ROUND1["vit_convnext_soc"]],
        dataset,
        round1_config(),
        tmp_path / "r1b",
    )
    assert_masks_equal(
        run,
        dataset,
        fixture / "expected" / "derived" / "vit_convnext_soc__Annotations__unpaired_fixed.npz",
    )


def test_round1_default_equals_compat_for_logit_reference(
    model_runs: dict[str, Run], dataset: Dataset, fixture: Path, tmp_path: Path
) -> None:
    """With a logit reference (SOC) the bug has no effect, so the default already matches upstream."""
    run = voted(
        [model_runs[m] for m in ROUND1["soc_mutr_referft"]],
        dataset,
        round1_config(),
        tmp_path / "r1a",
    )
    assert_masks_equal(
        run, dataset, fixture / "expected" / "npz" / "soc_mutr_referft__Annotations.npz"
    )


@pytest.fixture(scope="module")
def round2(
    tmp_path_factory: pytest.TempPathFactory, fixture: Path, dataset: Dataset
) -> dict[str, Run]:
    """Round 2 from the fixture's PNG inputs (imported as runs); en2 feeds the final vote."""
    root = tmp_path_factory.mktemp("round2")
    own_output = "second_ensemble/Annotations_en2"  # round 2a's output feeds round 2b
    runs: dict[str, Run] = {}
    config = VoteConfig(min_votes=4, grouping="pairs", unpaired=3)
    for node, folders in ROUND2.items():
        inputs = []
        for folder in folders:
            if folder == own_output:
                inputs.append(runs["Annotations_en2"])
                continue
            name = folder.replace("/", "__")
            if not (root / name / "run.json").exists():
                assert import_png(fixture / "inputs" / folder, dataset, root / name)
            inputs.append(Run(root / name))
        runs[node] = voted(inputs, dataset, config, root / node)
    return runs


@pytest.mark.parametrize("node", sorted(ROUND2))
def test_round2_matches_upstream(
    node: str, round2: dict[str, Run], dataset: Dataset, fixture: Path
) -> None:
    assert_masks_equal(
        round2[node], dataset, fixture / "expected" / "npz" / f"second_ensemble__{node}.npz"
    )


def test_submission_layout(
    round2: dict[str, Run], dataset: Dataset, fixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "submission.zip"
    write_submission(round2[FINAL], dataset, out)
    expected = (fixture / "expected" / "submission_members.txt").read_text().split()
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(expected)
        final = np.load(fixture / "expected" / "npz" / f"second_ensemble__{FINAL}.npz")
        for video in dataset:
            for exp_id in video.exp_ids:
                for t, frame in enumerate(video.frames):
                    png = archive.read(f"Annotations/{video.id}/{exp_id}/{frame}.png")
                    pixels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
                    assert np.array_equal(pixels == 255, final[f"{video.id}/{exp_id}"][t])
                    assert set(np.unique(pixels)) <= {0, 255}
