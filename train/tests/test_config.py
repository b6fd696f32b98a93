"""Training configurations: the shipped files load, overrides apply, bad files are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvos_core.errors import ConfigError
from rvos_train.config import CONFIG_ROOT, config_path, load_config, shipped_configs


@pytest.mark.parametrize("path", sorted(CONFIG_ROOT.glob("*/*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.model == path.parent.name
    assert config.optim.global_batch == config.optim.batch_size * config.optim.reference_gpus
    assert config.to_json()["optim"]["lr_drop"] == list(config.optim.lr_drop)


def test_soc_joint_is_upstreams_recipe() -> None:
    """soc_test/scripts/train_joint.sh + configs/joint.yaml."""
    config = load_config(config_path("soc", "joint"))
    assert config.data.sets == ("refcoco", "refcoco+", "refcocog", "refytvos")
    assert (config.data.num_frames, config.optim.epochs, config.optim.lr_drop) == (8, 30, (20,))
    assert (config.optim.lr, config.optim.lr_backbone, config.optim.lr_text_encoder) == (
        1e-4,
        1e-5,
        5e-6,
    )
    assert config.optim.global_batch == 8


def test_overrides_are_parsed_as_toml(tmp_path: Path) -> None:
    config = load_config(
        config_path("soc", "joint"),
        {"optim.epochs": "2", "data.sets": '["mevis"]', "optim.lr": "3e-4"},
    )
    assert (config.optim.epochs, config.data.sets, config.optim.lr) == (2, ("mevis",), 3e-4)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('model = "soc"\nbogus = 1\n', "unknown key(s) bogus"),
        ("[optim]\nepochs = 2\n", "'model' is missing"),
        ('model = "soc"\n[optim]\nepochs = "many"\n', "optim.epochs must be int"),
        ('model = "soc"\n[optim]\nlr_drop = [5, 2]\n', "lr_drop must be increasing"),
        ('model = "soc"\n[data]\nrecipe = "mine"\n', "data.recipe must be one of"),
        ('model = "soc"\n[init]\nsource = "web"\n', "init.source must be one of"),
        ('model = "soc"\n[optim]\nbatch = 1\n', "unknown key(s) in [optim]: batch"),
        ("model = \n", "not a valid TOML file"),
        ('model = "aot"\n[optim]\nwarmup_factor = 0.0\n', "warmup_factor must lie in (0, 1]"),
        ('model = "aot"\n[optim]\nlr_drop_unit = "week"\n', "lr_drop_unit must be one of"),
        ('model = "aot"\nschedule = 3\n', "[schedule] must be a table"),
        ('extends = "mine.toml"\nmodel = "aot"\n', "'extends' forms a cycle"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"mine\.toml") as caught:
        load_config(path)
    assert problem in str(caught.value)


def test_unknown_config_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="shipped: " + ", ".join(shipped_configs("soc"))):
        config_path("soc", "nope")


def test_extends_merges_table_by_table() -> None:
    """DeAOT's stage configs are AOT's with DeAOT's augmentation (upstream shares the stages)."""
    aot, deaot = (load_config(config_path(m, "pre")) for m in ("aot", "deaot"))
    assert (deaot.model, deaot.name, deaot.data.options) == ("deaot", "pre", {"aug": "v2"})
    assert deaot.optim == aot.optim and deaot.schedule == aot.schedule
    assert deaot.data.sets == aot.data.sets == ("static",)


def test_extends_a_relative_file(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text('model = "soc"\n[optim]\nepochs = 3\nlr = 1e-3\n')
    (tmp_path / "child.toml").write_text('extends = "base.toml"\n[optim]\nlr = 2e-3\n')
    config = load_config(tmp_path / "child.toml")
    assert (config.model, config.optim.epochs, config.optim.lr) == ("soc", 3, 2e-3)
