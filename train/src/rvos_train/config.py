"""Training configurations: one TOML file per recipe (``configs/<model>/<name>.toml``, or any
file), resolved once into a frozen ``TrainConfig``.

A file holds a flat ``model``/``variant`` pair and these tables (``extends = "<model>/<name>"``
takes another file's values first, this file's keys replacing them table by table)::

    model = "soc"
    variant = "full"
    [init]      source = "pretrained" | "checkpoint" | "random"
    [data]      sets = [...], recipe = "soc" | "referformer", num_frames, [data.options]
    [optim]     epochs, steps, batch_size, reference_gpus, lr, lr_backbone, lr_text_encoder,
                lr_linear_proj_mult, weight_decay, lr_drop, lr_drop_unit, lr_gamma,
                warmup_steps, warmup_factor, clip_max_norm, freeze_text_encoder
    [loss]      overrides of the criterion's settings (rvos_train.losses)
    [schedule]  a propagator's step schedule (rvos_vos.training.TrainSchedule fields; AOT/DeAOT)
    [validate]  dataset, split, every_epochs (optional)

Every key is checked: an unknown key, a wrong type or a bad value is a ConfigError naming the
file and the key. ``overrides`` (``key.sub=value`` strings from the command line) are applied
before the check.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rvos_core.errors import ConfigError

CONFIG_ROOT = Path(__file__).parent / "configs"
INIT_SOURCES = ("pretrained", "checkpoint", "random")
RECIPES = ("referformer", "soc", "uninext", "aot")
LR_DROP_UNITS = ("epoch", "step")


@dataclass(frozen=True)
class InitConfig:
    """Where the weights start: the PRETRAINED backbone + text encoder, a checkpoint (INIT), or
    random (the tiny variants on generated data)."""

    source: str = "pretrained"


@dataclass(frozen=True)
class DataConfig:
    """Training sets (their train splits, concatenated), the augmentation recipe, frames per clip
    and the readers' and augmentations' options (rvos_train.data)."""

    sets: tuple[str, ...] = ("refytvos",)
    recipe: str = "referformer"
    num_frames: int = 5
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the step schedule as upstream.

    batch_size clips per process and step; reference_gpus: the process count of the upstream
    recipe. The global batch is batch_size x reference_gpus whatever the number of processes
    here: fewer processes accumulate gradients over several micro-batches.

    Length: ``epochs`` passes over the data, or, when ``steps`` > 0, that many optimizer steps
    (iteration-based recipes: detectron2's MAX_ITER, aot-benchmark's TRAIN_TOTAL_STEPS; the data
    order still goes epoch by epoch). ``lr_drop`` milestones count epochs or steps
    (``lr_drop_unit``); ``warmup_steps`` > 0 ramps the rates linearly from ``warmup_factor`` x
    base to the base over the first steps (detectron2's WarmupMultiStepLR, method "linear").
    """

    epochs: int = 6
    steps: int = 0
    batch_size: int = 1
    reference_gpus: int = 8
    lr: float = 1e-4
    lr_backbone: float = 5e-5
    lr_text_encoder: float = 1e-5
    lr_linear_proj_mult: float = 1.0
    weight_decay: float = 5e-4
    lr_drop: tuple[int, ...] = (3, 5)
    lr_drop_unit: str = "epoch"
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    warmup_factor: float = 1.0
    clip_max_norm: float = 0.1
    freeze_text_encoder: bool = False

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.reference_gpus


@dataclass(frozen=True)
class ValidateConfig:
    """J&F on a held-out split with the real inference driver, every ``every_epochs`` epochs
    (0: never)."""

    dataset: str = "mevis"
    split: str = "valid_u"
    every_epochs: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """A resolved training configuration (what the run folder's config.json records)."""

    name: str
    model: str
    variant: str = "full"
    seed: int = 42
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    validate: ValidateConfig = field(default_factory=ValidateConfig)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists)."""
        return _plain(asdict(self))


SECTIONS = {
    "init": InitConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "validate": ValidateConfig,
}
TOP_LEVEL = {"model": str, "variant": str, "seed": int}
FREE_TABLES = ("loss", "schedule")
EXTENDS = "extends"
"""Tables checked by the model family that reads them (the criterion, the propagator schedule)."""


def config_path(model: str, name: str) -> Path:
    """``name`` as a file path, or the shipped ``configs/<model>/<name>.toml``."""
    given = Path(name)
    if given.suffix == ".toml":
        return given
    shipped = CONFIG_ROOT / model / f"{name}.toml"
    if not shipped.is_file():
        choices = ", ".join(shipped_configs(model)) or "none"
        raise ConfigError(f"no training config {name!r} for model {model} (shipped: {choices})")
    return shipped


def shipped_configs(model: str) -> list[str]:
    """The config names shipped for ``model``."""
    return sorted(p.stem for p in (CONFIG_ROOT / model).glob("*.toml"))


def load_config(path: Path, overrides: dict[str, str] | None = None) -> TrainConfig:
    """Read (with the files it extends), override and check one configuration file."""
    raw = _read_extended(path, [])
    for key, text in (overrides or {}).items():
        _override(raw, key, text, path)
    return _build(raw, path)


def _read_extended(path: Path, chain: list[Path]) -> dict[str, Any]:
    """The file's tables merged over those of the file its ``extends`` names (a shipped
    "<model>/<name>" or a .toml path relative to the file), key by key."""
    if path.resolve() in chain:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    raw = _read(path)
    base = raw.pop(EXTENDS, None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {EXTENDS} must be a string")
    model, _, name = base.partition("/")
    parent = path.parent / base if base.endswith(".toml") else config_path(model, name)
    return _merged(_read_extended(parent, [*chain, path.resolve()]), raw)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such training config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file ({exc})") from None


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


def _override(raw: dict[str, Any], key: str, text: str, path: Path) -> None:
    """Set ``raw[a][b] = value`` for ``key = "a.b"``; the value is parsed as TOML (a bare word
    is a string)."""
    *tables, leaf = key.split(".")
    target = raw
    for table in tables:
        target = target.setdefault(table, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{path}: override {key}: {table} is not a table")
    try:
        target[leaf] = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        target[leaf] = text


def _build(raw: dict[str, Any], path: Path) -> TrainConfig:
    unknown = set(raw) - set(SECTIONS) - set(TOP_LEVEL) - set(FREE_TABLES)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    if "model" not in raw:
        raise ConfigError(f"{path}: 'model' is missing")
    top = {k: _typed(path, k, raw[k], kind) for k, kind in TOP_LEVEL.items() if k in raw}
    sections = {
        name: _section(path, name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()
    }
    free = {name: raw.get(name, {}) for name in FREE_TABLES}
    for name, table in free.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
    config = TrainConfig(name=path.stem, **top, **sections, **free)
    _check(config, path)
    return config


def _section(path: Path, name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    typed = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        typed[key] = _typed(path, f"{name}.{key}", value, type(default), default)
    return cls(**typed)


def _typed(path: Path, key: str, value: Any, kind: type, default: Any = None) -> Any:
    """``value`` as ``kind`` (an int is a valid float; a list becomes a tuple of the default's
    item type)."""
    if kind is tuple:
        item = type(default[0]) if default else str
        if not isinstance(value, list) or not all(_is(v, item) for v in value):
            raise ConfigError(f"{path}: {key} must be a list of {item.__name__}, got {value!r}")
        return tuple(item(v) for v in value)
    if not _is(value, kind):
        raise ConfigError(f"{path}: {key} must be {kind.__name__}, got {value!r}")
    return kind(value)


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check(config: TrainConfig, path: Path) -> None:
    o, d = config.optim, config.data
    problems = [
        (config.init.source not in INIT_SOURCES, f"init.source must be one of {INIT_SOURCES}"),
        (d.recipe not in RECIPES, f"data.recipe must be one of {RECIPES}"),
        (not d.sets, "data.sets is empty"),
        (d.num_frames < 1, "data.num_frames must be >= 1"),
        (
            o.epochs < 1 or o.batch_size < 1 or o.reference_gpus < 1,
            "optim.epochs, batch_size and reference_gpus must be >= 1",
        ),
        (o.steps < 0 or o.warmup_steps < 0, "optim.steps and warmup_steps must be >= 0"),
        (not 0 < o.warmup_factor <= 1, "optim.warmup_factor must lie in (0, 1]"),
        (o.lr_drop_unit not in LR_DROP_UNITS, f"optim.lr_drop_unit must be one of {LR_DROP_UNITS}"),
        (o.lr <= 0 or o.weight_decay < 0 or o.clip_max_norm < 0, "optim: bad lr / decay / norm"),
        (list(o.lr_drop) != sorted(o.lr_drop), "optim.lr_drop must be increasing"),
        (config.validate.every_epochs < 0, "validate.every_epochs must be >= 0"),
    ]
    for bad, problem in problems:
        if bad:
            raise ConfigError(f"{path}: {problem}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
