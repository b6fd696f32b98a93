"""Plug-ins found through Python entry points (the only way core reaches a model package).

Groups:
    ``rvos.models``: name -> a ``rvos_nn.predictor.ModelEntry`` (the inference contract).
    ``rvos.propagators``: name -> a propagator (``rvos_vos.propagators.Propagator``).
    ``rvos.parity``: fixture kind -> a parity handler (see ``rvos_nn.parity``).

A package registers in its pyproject.toml, e.g.::

    [project.entry-points."rvos.models"]
    referformer = "rvos_referformer.entry:ENTRY"

and becomes visible once installed (``uv pip install -e models/referformer``).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from rvos_core.errors import ConfigError

MODELS = "rvos.models"
PARITY = "rvos.parity"
PROPAGATORS = "rvos.propagators"


def _entries(group: str) -> dict[str, EntryPoint]:
    return {e.name: e for e in entry_points(group=group)}


def names(group: str) -> list[str]:
    """Registered names of ``group``, sorted."""
    return sorted(_entries(group))


def load(group: str, name: str, what: str) -> object:
    """The object registered as ``name`` in ``group``; an unknown name lists the known ones."""
    found = _entries(group).get(name)
    if found is None:
        known = ", ".join(names(group)) or "none (is the package installed?)"
        raise ConfigError(f"unknown {what} {name!r}; registered ({group}): {known}")
    return found.load()


T = TypeVar("T")


def load_named(group: str, name: str, what: str, kind: type[T]) -> T:
    """``load``, checked: the object must be a ``kind`` whose ``name`` is the entry point's."""
    found = load(group, name, what)
    if not isinstance(found, kind) or getattr(found, "name", None) != name:
        raise ConfigError(
            f"entry point {name!r} of {group} must be a {kind.__module__}.{kind.__qualname__} "
            f"named {name!r}, got {type(found).__name__}"
        )
    return found
