"""AOT (Swin-L AOT-L of the competition): ``build``, ``AOTConfig``, ``VARIANTS``."""

from rvos_vos.aot.model import AOT, VARIANTS, AOTConfig, build

__all__ = ["AOT", "VARIANTS", "AOTConfig", "build"]
