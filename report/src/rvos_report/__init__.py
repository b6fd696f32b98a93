"""rvos_report: an HTML report of any set of run folders (``python -m rvos_report``), overlay
videos, and segmentation of a user's own video (``python -m rvos_report.segment``)."""

__version__ = "0.1.0"
