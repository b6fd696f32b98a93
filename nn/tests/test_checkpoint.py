from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from nn_double import build, save_checkpoint
from torch import nn

from rvos_core.errors import InputError
from rvos_nn.checkpoint import (
    LEGACY_TEXT_BUFFERS,
    CheckpointMismatch,
    CheckpointRules,
    KeyRule,
    check_checkpoint,
    fold_keys,
    load_checkpoint,
    load_state_dict_strict,
    shared_groups,
)
from rvos_nn.checkpoint_report import main

TESTS = Path(__file__).resolve().parent


class Toy(nn.Module):
    """Backbone with buffers, a head list shared by two parents, an optional text part."""

    def __init__(self, width: int = 4, text: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 1), nn.BatchNorm2d(width))
        self.bbox_embed = nn.ModuleList([nn.Linear(width, 2) for _ in range(2)])
        self.transformer = nn.Module()
        self.transformer.decoder = nn.Module()
        self.transformer.decoder.bbox_embed = self.bbox_embed
        if text:
            self.text_encoder = nn.Linear(width, width)


def seeded(seed: int, **kwargs: object) -> Toy:
    torch.manual_seed(seed)
    return Toy(**kwargs)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_shared_groups_found_from_the_model() -> None:
    groups = sorted(sorted(g) for g in shared_groups(Toy()))
    assert groups == [
        ["bbox_embed.0.bias", "transformer.decoder.bbox_embed.0.bias"],
        ["bbox_embed.0.weight", "transformer.decoder.bbox_embed.0.weight"],
        ["bbox_embed.1.bias", "transformer.decoder.bbox_embed.1.bias"],
        ["bbox_embed.1.weight", "transformer.decoder.bbox_embed.1.weight"],
    ]


def test_upstream_layout_loads_strictly(tmp_path: Path) -> None:
    source = seeded(1)
    path = tmp_path / "ckpt.pth"
    extras = {
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
        "lr_scheduler": {"milestones": Counter({6: 1, 8: 1}), "last_epoch": 3},
        "epoch": 3,
        "args": argparse.Namespace(lr=1e-4, backbone="video_swin_b_p4w7", lr_drop=[6, 8]),
    }
    torch.save({"model": source.state_dict(), **extras}, path)
    target = seeded(2)
    report = load_checkpoint(target, path)
    assert same_weights(source, target)
    assert report.ok and report.container == "model"
    assert report.stored == len(source.state_dict())
    assert len(report.shared) == 4 and report.filled == []


@pytest.mark.parametrize("container", ["model", "model_state_dict", "state_dict", None])
def test_containers_and_module_prefix(tmp_path: Path, container: str | None) -> None:
    source = seeded(1)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save(state if container is None else {container: state, "epoch": 1}, path)
    target = seeded(2)
    report = load_checkpoint(target, path)
    assert same_weights(source, target)
    assert report.container == container
    assert report.stripped == len(state)


def test_module_prefix_is_stripped_only_at_the_start() -> None:
    source = seeded(1)
    state = {k.replace("backbone.", "backbone.module."): v for k, v in source.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict_strict(seeded(2), state)
    assert "backbone.module.0.weight" in info.value.report.unexpected


def test_numpy_values_and_legacy_format(tmp_path: Path) -> None:
    source = seeded(1)
    state = {k: v.numpy() for k, v in source.state_dict().items()}
    path = tmp_path / "legacy.pth"
    extras = {"iteration": np.int64(5), "best": np.float64(0.5), "__author__": "someone"}
    torch.save({"model": state, **extras}, path, _use_new_zipfile_serialization=False)
    target = seeded(2)
    load_checkpoint(target, path)
    assert same_weights(source, target)


def test_ordered_prefix_renames_and_named_ignores() -> None:
    source = seeded(1, text=True)
    state = dict(source.state_dict())
    state = {
        k.replace("text_encoder.", "voc.", 1) if k.startswith("text_encoder.") else k: v
        for k, v in state.items()
    }
    state["text_encoder.embeddings.position_ids"] = torch.arange(4)
    state["ref_backbone.0.weight"] = torch.zeros(1)
    rules = CheckpointRules(
        renames=((r"voc\.", "vita."), (r"vita\.", "text_encoder.")),
        ignore=(LEGACY_TEXT_BUFFERS, KeyRule("template", r"ref_backbone\..*", "SOT only")),
    )
    target = seeded(2, text=True)
    report = load_state_dict_strict(target, state, rules)
    assert same_weights(source, target)
    assert report.renamed == {r"voc\.": 2, r"vita\.": 2}
    assert report.ignored == {
        "legacy-text-buffers": ["text_encoder.embeddings.position_ids"],
        "template": ["ref_backbone.0.weight"],
    }


def test_ignore_rules_never_hide_a_model_key() -> None:
    source = seeded(1)
    rules = CheckpointRules(ignore=(KeyRule("all", r".*", "everything"),))
    target = seeded(2)
    report = load_state_dict_strict(target, source.state_dict(), rules)
    assert same_weights(source, target) and report.ignored == {}


def test_mismatch_is_reported_before_anything_is_loaded() -> None:
    state = dict(seeded(1).state_dict())
    del state["backbone.1.running_var"]
    state["backbone.0.weight"] = torch.zeros(5, 3, 1, 1)
    state["extra.layers.0.weight"] = torch.zeros(1)
    state["extra.layers.1.weight"] = torch.zeros(1)
    target = seeded(2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict_strict(target, state)
    report = info.value.report
    assert report.missing == ["backbone.1.running_var"]
    assert report.unexpected == ["extra.layers.0.weight", "extra.layers.1.weight"]
    assert report.misshaped == [("backbone.0.weight", "float32[5, 3, 1, 1]", "float32[4, 3, 1, 1]")]
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    text = str(info.value)
    assert "1 missing, 2 unexpected, 1 mis-shaped" in text
    assert "extra.layers.#.weight  (2: 0, 1)" in text


def test_integer_buffer_with_float_values_is_misshaped() -> None:
    state = dict(seeded(1).state_dict())
    state["backbone.1.num_batches_tracked"] = torch.tensor(1.5)
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict_strict(seeded(2), state)
    assert info.value.report.misshaped == [
        ("backbone.1.num_batches_tracked", "float32[]", "int64[]")
    ]


def test_half_precision_weights_load_into_float32() -> None:
    source = seeded(1)
    state = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    target = seeded(2)
    load_state_dict_strict(target, state)
    assert torch.equal(target.bbox_embed[0].weight, state["bbox_embed.0.weight"].float())


def test_shared_copies_must_be_equal_and_a_missing_copy_is_filled() -> None:
    source = seeded(1)
    state = dict(source.state_dict())
    del state["transformer.decoder.bbox_embed.1.bias"]
    target = seeded(2)
    report = load_state_dict_strict(target, state)
    assert same_weights(source, target)
    assert report.filled == ["transformer.decoder.bbox_embed.1.bias"]
    state["transformer.decoder.bbox_embed.0.weight"] = state["bbox_embed.0.weight"] + 1
    with pytest.raises(CheckpointMismatch) as info:
        load_state_dict_strict(seeded(2), state)
    assert info.value.report.unequal == [
        ("bbox_embed.0.weight", "transformer.decoder.bbox_embed.0.weight")
    ]


def test_allow_missing_rule_keeps_the_init() -> None:
    state = dict(seeded(1).state_dict())
    del state["backbone.1.num_batches_tracked"]
    rules = CheckpointRules(allow_missing=(KeyRule("bn-counter", r".*num_batches_tracked", "x"),))
    target = seeded(2)
    report = load_state_dict_strict(target, state, rules)
    assert report.allowed_missing == {"bn-counter": ["backbone.1.num_batches_tracked"]}
    assert report.ok


def test_two_keys_mapping_to_one_name_is_an_error() -> None:
    state = dict(seeded(1).state_dict())
    state["module.backbone.0.weight"] = state["backbone.0.weight"]
    with pytest.raises(InputError, match=r"both map to 'backbone\.0\.weight'"):
        load_state_dict_strict(seeded(2), state)


def test_checkpoint_of_another_model(tmp_path: Path) -> None:
    path = tmp_path / "double.pth"
    save_checkpoint(path)
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(seeded(2), path)
    text = str(info.value)
    assert str(path) in text and "checkpoint of another model" in text
    assert "backbone.*  (7 keys)" in text  # missing: conv weight, bias + 5 batch-norm tensors


def test_damaged_files_are_input_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"model": seeded(1).state_dict()}, good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "empty.pth": b"",
        "text.pth": b"this is not a checkpoint",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match="not a readable PyTorch checkpoint") as info:
            load_checkpoint(seeded(2), path)
        assert info.value.path == path
    with pytest.raises(InputError, match="checkpoint file is missing"):
        load_checkpoint(seeded(2), tmp_path / "absent.pth")


def test_safetensors_files_load_strictly_and_damage_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = seeded(1)
    path = tmp_path / "zoo.safetensors"
    state = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("trans")}
    save_file(state, path)
    target = seeded(2)
    report = load_checkpoint(target, path)
    assert same_weights(source, target)
    assert report.container is None and report.filled  # the decoder's copies come from the twins
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="not a readable safetensors file") as info:
        load_checkpoint(seeded(2), damaged)
    assert info.value.path == damaged


@pytest.mark.parametrize("zip_format", [True, False])
def test_unsafe_globals_are_refused_and_named(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "unsafe.pth"
    content = {"model": seeded(1).state_dict(), "date": datetime.date(2023, 10, 1)}
    torch.save(content, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(InputError, match=r"datetime\.date"):
        load_checkpoint(seeded(2), path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2], path)
    with pytest.raises(InputError, match="holds a list"):
        load_checkpoint(seeded(2), path)
    torch.save({"model": {"a": 1}, "epoch": 2}, path)
    with pytest.raises(InputError, match="non-tensor entries 'a'"):
        load_checkpoint(seeded(2), path)


def test_fold_keys_groups_by_prefix_and_numbered_pattern() -> None:
    keys = [
        "transformer.encoder.layers.0.norm1.weight",
        "transformer.encoder.layers.1.norm1.weight",
        "transformer.level_embed",
        "query_embed.weight",
    ]
    assert fold_keys(keys) == [
        "query_embed.*  (1 key)",
        "    query_embed.weight",
        "transformer.*  (3 keys)",
        "    transformer.encoder.layers.#.norm1.weight  (2: 0, 1)",
        "    transformer.level_embed",
    ]


def test_fold_keys_caps_patterns_per_prefix() -> None:
    keys = [f"head.part{i}.weight" for i in range(12)]
    lines = fold_keys(keys, patterns_per_prefix=3)
    assert lines[0] == "head.*  (12 keys)" and lines[-1] == "    ... 9 more patterns"
    assert len(lines) == 5


def test_check_on_meta_model_matches_load(tmp_path: Path) -> None:
    path = tmp_path / "double.pth"
    save_checkpoint(path)
    with torch.device("meta"):
        model = build("tiny")
    report = check_checkpoint(model, path)
    assert report.ok and report.filled == [] and len(report.shared) == 2


def test_report_cli(tmp_path: Path, registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "double.pth"
    save_checkpoint(good)
    assert main(["double", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK: loads strictly" in out and "variant tiny" in out
    assert main(["double", str(good), "--variant", "full"]) == 1
    assert "mis-shaped (stored vs model) (" in capsys.readouterr().out
    broken = tmp_path / "broken.pth"
    broken.write_bytes(good.read_bytes()[:100])
    assert main(["double", str(broken)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["nope", str(good)]) == 2
    assert "registered (rvos.models): double" in capsys.readouterr().err


def test_report_module_cli(tmp_path: Path, registered: Path) -> None:
    good = tmp_path / "double.pth"
    save_checkpoint(good)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(registered)])}
    command = [sys.executable, "-m", "rvos_nn.checkpoint_report", "double", str(good)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "OK: loads strictly" in done.stdout
