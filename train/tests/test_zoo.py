"""The tiny zoo: the shipped weights load strictly through the real loaders, and ``make zoo``'s
command builds a zoo (a short AOT run: the world, training, export, manifest, score, resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rvos_nn.zoo import MANIFEST, Zoo, file_sha256, load_model
from rvos_train import zoo as builder
from rvos_vos.propagators import load_propagator

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "zoo"


def _shipped(kind: str, names: tuple[str, ...]) -> list[str]:
    if not (SHIPPED / MANIFEST).is_file():
        return []
    return sorted(n for n, e in Zoo.open(SHIPPED).entries.items() if e.kind == kind and n in names)


@pytest.mark.parametrize("name", _shipped("model", ("soc", "mutr", "referformer")))
def test_a_shipped_model_loads_strictly(name: str) -> None:
    model = load_model(Zoo.open(SHIPPED), name)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", _shipped("propagator", builder.PROPAGATORS))
def test_a_shipped_propagator_loads_strictly(name: str) -> None:
    zoo = Zoo.open(SHIPPED)
    propagator = load_propagator(name)
    net = propagator.build(propagator.config(zoo.entry(name, "propagator").variant, None))
    propagator.load(net, zoo.weights(name, "propagator"))


def test_the_shipped_manifest_names_every_network_of_the_recipe() -> None:
    manifest = json.loads((SHIPPED / MANIFEST).read_text())
    assert sorted(manifest["entries"]) == sorted(builder.MODELS + builder.PROPAGATORS)
    for name, entry in manifest["entries"].items():
        assert entry["jf"]["jf"] == pytest.approx((entry["jf"]["j"] + entry["jf"]["f"]) / 2)
        assert entry["cpu_seconds"] > 0 and entry["steps"] > 0, name


def test_the_zoo_command_trains_exports_scores_and_resumes(tmp_path: Path) -> None:
    out, work = tmp_path / "zoo", tmp_path / "work"
    command = [sys.executable, "-m", "rvos_train.zoo", "--out", str(out), "--work", str(work)]
    command += ["--only", "aot", "--steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / MANIFEST).read_text())
    entry = manifest["entries"]["aot"]
    assert entry["kind"] == "propagator" and entry["variant"] == "tiny" and entry["steps"] == 2
    assert entry["sha256"] == file_sha256(out / "aot.safetensors") and entry["cpu_seconds"] > 0
    assert 0 <= entry["jf"]["jf"] <= 1 and entry["jf"]["split"] == "val"
    assert manifest["world"]["world"].startswith("world-") and (out / "pretrained").is_dir()
    assert "zoo: aot: J&F" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / MANIFEST).read_text())["entries"]["aot"]["sha256"] == entry["sha256"]


def test_the_zoo_keeps_the_tokenizers_its_networks_were_trained_with(tmp_path: Path) -> None:
    world, zoo = tmp_path / "world" / "pretrained", tmp_path / "zoo" / "pretrained"
    (world / "bert").mkdir(parents=True)
    (world / "bert" / "vocab.txt").write_text("first world\n")
    builder.share_tokenizers(world, zoo)  # a new zoo takes the world's
    assert (zoo / "bert" / "vocab.txt").read_text() == "first world\n"
    (world / "bert" / "vocab.txt").write_text("a world drawn again\n")
    builder.share_tokenizers(world, zoo)  # a rebuilt network trains with the zoo's
    assert (world / "bert" / "vocab.txt").read_text() == "first world\n"
    assert (zoo / "bert" / "vocab.txt").read_text() == "first world\n"
