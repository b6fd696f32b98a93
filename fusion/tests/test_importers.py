from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fusion_testlib import bits

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import InputError
from rvos_core.masks import encode_mask_png, stored_probs
from rvos_core.runfolder import Run
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_fusion.cli import main
from rvos_fusion.importers import import_png, import_pth


def upstream_dict(values: np.ndarray | None = None) -> dict:
    """The upstream per-model layout for the tiny dataset (video 'v', 3 expressions, 2x1x4)."""
    values = (
        np.array([[[-1.0, 0.0, 2.0, 1e-9]], [[3.0, -3.0, 0.5, -0.0]]], np.float32)
        if values is None
        else values
    )
    return {
        "v": {
            e: {"mask_logits": torch.from_numpy(values.copy()), "class_info": [0.1, 0.3]}
            for e in "012"
        }
    }


def save(path: Path, data: object) -> Path:
    torch.save(data, path)
    return path


def test_logits_binarise_as_upstream(tmp_path: Path, tiny: Dataset) -> None:
    assert import_pth([save(tmp_path / "m.pth", upstream_dict())], "logit", tiny, tmp_path / "run")
    run = Run(tmp_path / "run")
    # float32 sigmoid(x) > 0.5: 0.0 and -0.0 are background, 1e-9 too (sigmoid rounds to 0.5)
    assert np.array_equal(run.masks(tiny.video("v"), "0"), bits("0010", "1010"))
    assert run.key_frames()["v"]["2"] == {"index_info": {"class_index": 1}}
    assert run.value_domain == "logit"


def test_probabilities(tmp_path: Path, tiny: Dataset) -> None:
    values = np.array([[[0.5, 0.51, 0.0, 1.0]], [[0.2, 0.9, 0.49, 0.6]]], np.float32)
    assert import_pth(
        [save(tmp_path / "m.pth", upstream_dict(values))], "probability", tiny, tmp_path / "run"
    )
    run = Run(tmp_path / "run")
    assert np.array_equal(run.masks(tiny.video("v"), "1"), bits("0101", "0101"))
    assert run.probs(tiny.video("v"), "1").tolist() == [[[127, 130, 0, 255]], [[51, 230, 125, 153]]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("domain", ["logit", "probability"])
def test_stored_probabilities_are_the_reference(
    tmp_path: Path, tiny: Dataset, dtype: torch.dtype, domain: str
) -> None:
    """Probabilities are stored_probs of the tensor's values (any float dtype), the masks are
    q >= 128, and the same without stored probabilities (--no-probs)."""
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 6.0, (2, 1, 4)).astype(np.float32)
    if domain == "probability":
        values = np.array([[[0.0, 1e-7, 0.5, 0.50000006]], [[0.9980392, 1.0, 0.3, 0.7]]])
    data = upstream_dict(values.astype(np.float32))
    for entry in data["v"].values():
        entry["mask_logits"] = entry["mask_logits"].to(dtype)
    exact = data["v"]["0"]["mask_logits"].float().numpy()
    pth = save(tmp_path / "m.pth", data)
    assert import_pth([pth], domain, tiny, tmp_path / "run")
    assert import_pth([pth], domain, tiny, tmp_path / "masks_only", save_probs=False)
    video = tiny.video("v")
    probs = Run(tmp_path / "run").probs(video, "0")
    assert np.array_equal(probs, stored_probs(exact, domain == "logit"))
    assert np.array_equal(Run(tmp_path / "run").masks(video, "0"), probs >= 128)
    assert np.array_equal(Run(tmp_path / "masks_only").masks(video, "0"), probs >= 128)


def test_chunks_may_come_in_any_number(tmp_path: Path, tiny: Dataset) -> None:
    files = [save(tmp_path / "a.pth", upstream_dict()), save(tmp_path / "b.pth", {})]
    assert import_pth(files, "logit", tiny, tmp_path / "run")


def _with(mutation) -> dict:
    data = upstream_dict()
    mutation(data)
    return data


@pytest.mark.parametrize(
    ("data", "domain", "message"),
    [
        ([1, 2, 3], "logit", "not an upstream per-model dict"),
        ({}, "logit", "1 videos of the split are in no file: v"),
        (_with(lambda d: d.update(w=d["v"])), "logit", "not in the split valid: w"),
        (_with(lambda d: d["v"].pop("2")), "logit", r"expressions \['0', '1'\] differ"),
        (
            _with(lambda d: d["v"]["1"].pop("class_info")),
            "logit",
            "expected keys 'mask_logits' and 'class_info'",
        ),
        (_with(lambda d: d["v"]["0"].update(class_info=[0.1])), "logit", "must list 2 scores"),
        (
            _with(lambda d: d["v"]["0"].update(class_info=[0.1, float("nan")])),
            "logit",
            "non-finite",
        ),
        (
            _with(lambda d: d["v"]["0"].update(mask_logits=torch.zeros(3, 1, 4))),
            "logit",
            r"need one \[T=2, H, W\]",
        ),
        (
            _with(lambda d: d["v"]["0"].update(mask_logits=torch.zeros(2, 4))),
            "logit",
            r"no \[T, H, W\]",
        ),
        (
            _with(lambda d: d["v"]["1"]["mask_logits"].__setitem__((0, 0, 0), float("nan"))),
            "logit",
            "NaN or infinite",
        ),
        (upstream_dict(), "probability", r"outside \[0, 1\]"),
    ],
)
def test_bad_pth(tmp_path: Path, tiny: Dataset, data: object, domain: str, message: str) -> None:
    path = save(tmp_path / "m.pth", data)
    with pytest.raises(InputError, match=message) as info:
        import_pth([path], domain, tiny, tmp_path / "run")
    assert info.value.path == path
    assert not (tmp_path / "run" / "run.json").exists()


def test_truncated_and_foreign_files(tmp_path: Path, tiny: Dataset) -> None:
    good = save(tmp_path / "m.pth", upstream_dict()).read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.pth").write_text("hello")
    for name in ("cut.pth", "text.pth", "absent.pth"):
        with pytest.raises(InputError, match=name):
            import_pth([tmp_path / name], "logit", tiny, tmp_path / "run")


class _Hostile:
    """Unpickling it would run a command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_one_line_and_runs_nothing(
    tmp_path: Path, tiny: Dataset, capsys: pytest.CaptureFixture
) -> None:
    marker = tmp_path / "executed"
    path = save(tmp_path / "hostile.pth", {"v": {"0": _Hostile(marker)}})
    argv = ["split-pth", str(path), "--domain", "logit", "--out", str(tmp_path / "run")]
    assert main([*argv, "--data", str(tiny.root.parent), "--split", "valid"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: refused: the pickle names posix.system")
    assert "posix.system" in err and err.count("\n") == 1
    assert "\x1b" not in err and "weights_only" not in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_video_in_two_chunks(tmp_path: Path, tiny: Dataset) -> None:
    files = [save(tmp_path / "a.pth", upstream_dict()), save(tmp_path / "b.pth", upstream_dict())]
    with pytest.raises(InputError, match=r"b\.pth: video 'v' is also in .*a\.pth"):
        import_pth(files, "logit", tiny, tmp_path / "run")


def write_tree(root: Path, dataset: Dataset) -> Path:
    for video in dataset:
        for exp_id in video.exp_ids:
            for frame in video.frames:
                (root / video.id / exp_id).mkdir(parents=True, exist_ok=True)
                (root / video.id / exp_id / f"{frame}.png").write_bytes(
                    encode_mask_png(np.eye(1, 4, dtype=bool))
                )
    return root


def test_import_png_with_key_frames(tmp_path: Path, tiny: Dataset) -> None:
    tree = write_tree(tmp_path / "tree", tiny)
    table = {"v": {e: {"index_info": {"class_index": 1}} for e in "012"}}
    (tmp_path / "kf.json").write_text(json.dumps(table))
    assert import_png(tree, tiny, tmp_path / "run", tmp_path / "kf.json")
    assert Run(tmp_path / "run").key_frames() == table


def test_import_png_refuses_bad_key_frames_and_missing_frames(
    tmp_path: Path, tiny: Dataset
) -> None:
    tree = write_tree(tmp_path / "tree", tiny)
    (tmp_path / "kf.json").write_text(
        json.dumps({"v": {e: {"index_info": {"class_index": 2}} for e in "012"}})
    )
    with pytest.raises(InputError, match=r"kf\.json: key frames: v/0 index 2 is outside 0\.\.1"):
        import_png(tree, tiny, tmp_path / "run", tmp_path / "kf.json")
    assert not (tmp_path / "run").exists()
    (tree / "v" / "2" / "00005.png").unlink()
    with pytest.raises(InputError, match=r"v/2/00005\.png: mask PNG is missing"):
        import_png(tree, tiny, tmp_path / "run")
    assert not (tmp_path / "run" / "run.json").exists()


def test_import_png_blames_a_wrong_first_mask(tmp_path: Path) -> None:
    write_refytvos(tmp_path / "data", "valid", [VideoSpec("v", 3, 2, (1, 4))])
    framed = open_dataset("refytvos", tmp_path / "data", "valid")
    tree = write_tree(tmp_path / "tree", framed)
    wrong = tree / "v" / "0" / f"{framed.video('v').frames[0]}.png"
    wrong.write_bytes(encode_mask_png(np.ones((2, 4), bool)))
    with pytest.raises(InputError, match="mask is 2x4, expected 1x4") as info:
        import_png(tree, framed, tmp_path / "run")
    assert info.value.path == wrong
