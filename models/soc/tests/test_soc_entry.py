"""SOC through the inference driver: a run folder from the tiny variant, the CLI refusing a
checkpoint of another model without writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from soc_testlib import competition_file, tiny_model

from rvos_core.data import open_dataset
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import parity_dir, unset_path_variables
from rvos_nn.infer import InferSettings, infer, main
from rvos_nn.predictor import load_model_entry
from rvos_nn.testing import pretrained_folder
from rvos_soc import TINY


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    specs = [
        VideoSpec("vid_a", expressions=2, frames=3, size=(36, 48)),
        VideoSpec("vid_b", expressions=1, frames=2, size=(40, 40)),
    ]
    write_refytvos(root, "valid", specs)
    return root


def test_driver_run_with_the_tiny_variant(tmp_path: Path, data: Path) -> None:
    checkpoint = competition_file(
        tmp_path / "soc.tar", tiny_model(seed=7).state_dict(), TINY.text.max_position_embeddings
    )
    dataset = open_dataset("refytvos", data, "valid")
    settings = InferSettings(
        variant="tiny", checkpoint=checkpoint, pretrained=pretrained_folder(tmp_path / "pre")
    )
    assert infer(load_model_entry("soc"), dataset, tmp_path / "run", settings)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"] == "soc" and run["value_domain"] == "logit"
    assert run["checkpoint"]["file"] == "soc.tar"
    for video_id in ("vid_a", "vid_b"):
        video = dataset.video(video_id)
        scores = json.loads((tmp_path / "run" / "scores" / f"{video_id}.json").read_text())
        assert sorted(scores) == sorted(video.exp_ids)
        assert all(len(v) == len(video.frames) for v in scores.values())
        for exp_id in video.exp_ids:
            pngs = sorted((tmp_path / "run" / "Annotations" / video_id / exp_id).glob("*.png"))
            assert len(pngs) == len(video.frames)


@pytest.mark.parity
def test_cli_refuses_a_referformer_checkpoint(
    tmp_path: Path,
    data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = torch.load(parity_dir("referformer") / "state_dict.pt", weights_only=True)
    checkpoint = tmp_path / "referformer_ft.pth"
    torch.save({"model": state}, checkpoint)
    env = tmp_path / "paths.env"
    env.write_text(
        f"DATA = {data}\nPRETRAINED = {pretrained_folder(tmp_path / 'pre')}\n"
        f"CHECKPOINTS = {tmp_path}\nWORK = {tmp_path / 'work'}\nSPLIT = valid\n"
    )
    unset_path_variables(monkeypatch)
    monkeypatch.setenv("RVOS_PATHS_ENV", str(env))
    out = tmp_path / "run"
    argv = ["soc", "--variant", "tiny", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--dataset", "refytvos"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(checkpoint) in err
    assert "does not match the model" in err and "missing" in err and "unexpected" in err
    assert not out.exists()
