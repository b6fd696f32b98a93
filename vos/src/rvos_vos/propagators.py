"""The two propagators and what differs between their code bases besides the network.

* AOT: the competition's copy (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d, ``soc_test/AOT``).
  Its ``AOTInferEngine`` hands the inner engine ``obj_nums = MAX_OBJ_NUM`` whatever the mask holds,
  so no identity is masked when decoding; a reference frame sets ``last_mem_step`` to 0.
* DeAOT: stock aot-benchmark @ 75e46fe driven by the competition's procedure (its DeAOT code was
  never published). The procedure reports 0 objects for the key frame, with which stock DeAOT would
  mask every foreground id; like the parity fixture we use the number of objects in the key mask
  (1), so ids 2..10 are masked. A reference frame sets ``last_mem_step`` to the running step.

Checkpoints: upstream's trainer saves ``{'state_dict', 'optimizer'(, 'scaler')}``; the loader
takes 'state_dict', 'model' or a bare dict and strips ``module.``. We load strictly; a stored
``LSTT.mask_token`` (an unused AOT parameter of later aot-benchmark versions) is ignored by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rvos_core import registry
from rvos_core.errors import ConfigError, InputError
from rvos_nn.checkpoint import (
    CheckpointRules,
    KeyRule,
    extract_state_dict,
    load_state_dict_strict,
    read_checkpoint,
)
from rvos_vos import aot, deaot
from rvos_vos.network import NetConfig, PropagationNet
from rvos_vos.session import MemoryPolicy

CONTAINERS = ("state_dict", "model")
MODULE_PREFIX = "module."


@dataclass(frozen=True)
class Propagator:
    """One propagator: its network, variants and upstream conventions.

    Attributes:
        name: 'aot' or 'deaot' (the CLI's first argument).
        config_type / variants / build: the network.
        reference_resets_step: see MemoryPolicy.
        mask_unused_ids: decode only the key mask's object ids (else all MAX_OBJ_NUM stay live).
        signature: a key only this propagator's checkpoints hold (to name a wrong checkpoint).
        checkpoint_name: the file under CHECKPOINTS the Makefile passes.
        rules: strict-loading rules.
    """

    name: str
    config_type: type[NetConfig]
    variants: Mapping[str, NetConfig]
    build: Callable[..., PropagationNet]
    reference_resets_step: bool
    mask_unused_ids: bool
    signature: str
    checkpoint_name: str
    rules: CheckpointRules

    def config(self, variant: str = "full", path: Path | None = None) -> NetConfig:
        """A named variant, or the upstream-style JSON config at ``path`` (see NetConfig.from_upstream)."""
        if path is not None:
            try:
                values = json.loads(Path(path).read_text())
            except FileNotFoundError:
                raise InputError(path, "config file is missing") from None
            except json.JSONDecodeError as exc:
                raise InputError(path, f"not valid JSON: {exc}") from None
            try:
                return self.config_type.from_upstream(values)
            except (ConfigError, KeyError, TypeError, ValueError) as exc:
                raise InputError(path, f"not a valid {self.name} config: {exc}") from None
        if variant not in self.variants:
            raise ConfigError(
                f"{self.name}: unknown variant {variant!r} (one of {', '.join(self.variants)})"
            )
        return self.variants[variant]

    def policy(
        self, config: NetConfig, gap: int | None = None, max_long_term: int | None = None
    ) -> MemoryPolicy:
        """The memory schedule: the config's gap unless ``gap`` is given; uncapped by default."""
        return MemoryPolicy(
            long_term_gap=config.long_term_gap if gap is None else gap,
            reference_resets_step=self.reference_resets_step,
            max_long_term=max_long_term,
        )

    def live_ids(self, config: NetConfig, objects: int) -> int:
        return objects if self.mask_unused_ids else config.max_obj_num

    def load(self, net: PropagationNet, path: Path) -> None:
        """Load a checkpoint strictly; a checkpoint of the other propagator is named as such."""
        _, state = extract_state_dict(read_checkpoint(path), path, CONTAINERS)
        names = {k.removeprefix(MODULE_PREFIX) for k in state}
        if self.signature not in names:
            found = (
                registry.load(registry.PROPAGATORS, n, "propagator")
                for n in registry.names(registry.PROPAGATORS)
            )
            others = (p for p in found if isinstance(p, Propagator))
            other = next((p for p in others if p.signature in names), None)
            if other is not None and other is not self:
                raise InputError(
                    path,
                    f"this is a {other.name} checkpoint (it holds {other.signature}), not {self.name}:"
                    f" use `python -m rvos_vos.propagate {other.name}` or the {self.name} weights"
                    f" ({self.checkpoint_name})",
                )
        load_state_dict_strict(net, state, self.rules, source=str(path))


_MASK_TOKEN = KeyRule(
    name="aot-mask-token",
    pattern=r"LSTT\.mask_token",
    reason="parameter of later aot-benchmark AOT versions, never used at inference",
)

AOT = Propagator(
    name="aot",
    config_type=aot.AOTConfig,
    variants=aot.VARIANTS,
    build=aot.build,
    reference_resets_step=True,
    mask_unused_ids=False,
    signature="LSTT.layers.0.linear_Q.weight",
    checkpoint_name="aot_swinl.pth",
    rules=CheckpointRules(ignore=(_MASK_TOKEN,), containers=CONTAINERS),
)
DEAOT = Propagator(
    name="deaot",
    config_type=deaot.DeAOTConfig,
    variants=deaot.VARIANTS,
    build=deaot.build,
    reference_resets_step=False,
    mask_unused_ids=True,
    signature="LSTT.layers.0.linear_QV.weight",
    checkpoint_name="deaot_swinl.pth",
    rules=CheckpointRules(ignore=(), containers=CONTAINERS),
)


def load_propagator(name: str) -> Propagator:
    """The propagator registered as ``name`` under ``rvos.propagators`` (entry points, as models)."""
    return registry.load_named(registry.PROPAGATORS, name, "propagator", Propagator)
