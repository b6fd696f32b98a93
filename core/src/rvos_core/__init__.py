"""rvos_core: what every subproject of the RVOS ensemble shares (nothing model-specific)."""

from rvos_core.errors import InputError, RvosError

__all__ = ["InputError", "RvosError"]
__version__ = "0.1.0"
