"""Exceptions raised by the visualizers. Each one says what was wrong and how to fix it.

They all derive from :class:`vene.VeneError`, so ``except vene.VeneError`` catches bad input to
any part of vene, and from the builtin exception that fits (``ValueError``, ``TypeError``,
``KeyError``) so that generic handlers keep working.
"""

from __future__ import annotations

from vene import VeneError

__all__ = [
    "VisualizationError",
    "DataShapeError",
    "LabelMismatchError",
    "DataTypeError",
    "DataValueError",
    "MissingMetricError",
]


class VisualizationError(VeneError, ValueError):
    """Base class of every error a visualizer raises (also: an unknown or invalid option)."""


class DataShapeError(VisualizationError):
    """Data with the wrong number of dimensions (a 3-D tensor for a 2-D heatmap), or empty."""


class LabelMismatchError(VisualizationError):
    """Labels (tokens, layers, heads) whose count differs from the axis they label."""


class DataTypeError(VisualizationError, TypeError):
    """Data of a kind the visualizer cannot read (a string, a module without a mask)."""


class DataValueError(VisualizationError):
    """Values that cannot be drawn: infinities, or non-numbers where numbers are needed."""


class MissingMetricError(VisualizationError, KeyError):
    """A metric or step key that the records do not contain."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""
