"""vene-viz: visualizers for vene results."""

from ._version import __version__

__all__ = ["__version__"]
