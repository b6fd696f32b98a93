"""DeAOT (DeAOT-L with a Swin encoder): ``build``, ``DeAOTConfig``, ``VARIANTS``."""

from rvos_vos.deaot.model import VARIANTS, DeAOT, DeAOTConfig, build

__all__ = ["VARIANTS", "DeAOT", "DeAOTConfig", "build"]
