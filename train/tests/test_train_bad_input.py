"""Bad input to the training command: one clear line naming the file, status 2, no traceback,
and nothing of an existing run overwritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from trainlib import SPECS, run, train_command, write_world

from rvos_core.synthetic import write_refytvos_train
from rvos_nn.predictor import load_model_entry


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("badworld")
    data, pretrained = write_world(root)
    write_refytvos_train(data, SPECS, seed=0)
    return root, data, pretrained


def _fails(command: list[str], *names: str, report: bool = False) -> str:
    """The command's one error line (``report``: followed by the checkpoint loader's report)."""
    done = run(command)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and (report or len(lines) == 1), done.stderr
    assert "Traceback" not in done.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _copy(world: tuple[Path, Path, Path], name: str) -> Path:
    root, data, _ = world
    copy = root / name
    shutil.copytree(data, copy)
    return copy


def test_checkpoint_of_another_model_as_init(world: tuple[Path, Path, Path]) -> None:
    root, data, pretrained = world
    foreign = root / "soc.pth"
    torch.save({"model_state_dict": load_model_entry("soc").build("tiny").state_dict()}, foreign)
    out = root / "init-foreign"
    command = train_command("referformer", out, data, pretrained, "--init", str(foreign))
    _fails(
        [*command, "--set", "init.source=checkpoint"], str(foreign), "does not match", report=True
    )
    assert not out.exists()


def test_resume_folder_of_another_configuration(world: tuple[Path, Path, Path]) -> None:
    root, data, pretrained = world
    out = root / "other-config"
    first = run(train_command("referformer", out, data, pretrained, "--stop-after", "1"))
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    command = train_command("referformer", out, data, pretrained, "--set", "optim.lr=0.002")
    _fails(command, str(out), "optim.lr", "0.001", "0.002")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_corrupt_frame(world: tuple[Path, Path, Path]) -> None:
    root, _, pretrained = world
    data = _copy(world, "corrupt")
    frame = next((data / "mevis" / "train" / "JPEGImages").rglob("*.jpg"))
    frame.write_bytes(frame.read_bytes()[:40])
    out = root / "corrupt-run"
    _fails(train_command("referformer", out, data, pretrained), str(frame))
    assert not list(out.glob("checkpoints/step-*"))


def test_mask_of_another_size(world: tuple[Path, Path, Path]) -> None:
    root, _, pretrained = world
    data = _copy(world, "wrong-size")
    masks = data / "mevis" / "train" / "mask_dict.json"
    stored = json.loads(masks.read_text())
    for rles in stored.values():
        for rle in rles:
            if rle is not None:
                rle["size"] = [rle["size"][0] + 1, rle["size"][1]]
    masks.write_text(json.dumps(stored))
    _fails(train_command("referformer", root / "size-run", data, pretrained), str(masks))


def test_expression_whose_object_has_no_mask(world: tuple[Path, Path, Path]) -> None:
    root, _, pretrained = world
    data = _copy(world, "unknown-object")
    meta = data / "refer_youtube_vos" / "meta_expressions" / "train" / "meta_expressions.json"
    stored = json.loads(meta.read_text())
    first = next(iter(stored["videos"].values()))
    next(iter(first["expressions"].values()))["obj_id"] = "9"
    meta.write_text(json.dumps(stored))
    command = train_command("referformer", root / "object-run", data, pretrained)
    _fails([*command, "--set", 'data.sets=["refytvos"]'], "9")


def test_a_loss_that_is_not_finite_stops_before_the_update(
    world: tuple[Path, Path, Path],
) -> None:
    root, data, pretrained = world
    out = root / "nan"
    command = train_command("referformer", out, data, pretrained, "--set", "loss.weight_dice=nan")
    line = _fails(command, "not finite at step 1", "loss_dice")
    assert "resume" in line
    assert not list(out.glob("checkpoints/step-*"))
