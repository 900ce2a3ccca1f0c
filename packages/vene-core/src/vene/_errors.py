"""Exceptions raised by vene. Every one says what was wrong and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "VeneError",
    "ConfigError",
    "SiteResolutionError",
    "UnitLocationError",
    "BatchSizeError",
    "SubspaceError",
    "PluginError",
    "MissingPluginError",
    "ArtifactError",
    "nearest",
]


class VeneError(Exception):
    """Base class of every error vene raises on bad input."""


class ConfigError(VeneError, ValueError):
    """A configuration that cannot be built (bad field, conflicting options)."""


class SiteResolutionError(VeneError, KeyError):
    """A component or module path that does not exist on the model."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnitLocationError(VeneError, IndexError):
    """``unit_locations`` of the wrong nesting, or out of range of the tensor."""


class BatchSizeError(VeneError, ValueError):
    """Base and sources (or locations) disagree on the batch size."""


class SubspaceError(VeneError, IndexError):
    """A subspace index or partition that does not exist."""


class PluginError(VeneError, RuntimeError):
    """A plugin that cannot be registered (for instance a name registered twice)."""


class MissingPluginError(VeneError, ImportError):
    """A name that an uninstalled plugin package provides."""


class ArtifactError(VeneError, ValueError):
    """A saved artifact that cannot be loaded (unknown type, wrong model, bad schema)."""


def nearest(word: str, candidates: Iterable[str], n: int = 5, *, cutoff: float = 0.4) -> str:
    """Return ``" Did you mean: a, b?"`` for the closest candidates, or ``""``.

    The one "did you mean" of every vene package: ``n`` names at most, each at least ``cutoff``
    similar to ``word`` (:func:`difflib.get_close_matches`), closest first.
    """
    close = difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""
