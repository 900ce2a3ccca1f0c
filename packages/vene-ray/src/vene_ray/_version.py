"""The version of vene-ray (read by hatchling from this file)."""

__version__ = "0.1.0"
