"""vene-viz's entry point: registers the visualizers with vene's plugin manager.

Importing this module (which every registry does) imports no matplotlib: the visualizers load
it when they first draw.
"""

from __future__ import annotations

from collections.abc import Sequence

from vene import hookimpl

__all__ = ["vene_visualizers"]


@hookimpl
def vene_visualizers() -> Sequence[type]:
    """Return the visualizer classes, each registered under its ``type_name``."""
    from ._visualizers import VISUALIZERS

    return VISUALIZERS
