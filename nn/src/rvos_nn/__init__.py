"""rvos_nn: the torch side shared by the model and propagator packages (nothing model-specific)."""

__version__ = "0.1.0"
