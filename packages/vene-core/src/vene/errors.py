"""The exceptions vene raises, at their public names (also at ``vene.<Name>``).

Every one is a :class:`VeneError` and says what was wrong and how to fix it; plugins raise these
(or subclasses) for bad input. :func:`nearest` builds the "Did you mean" of a message.
"""

from __future__ import annotations

from ._errors import (
    ArtifactError,
    BatchSizeError,
    ConfigError,
    MissingPluginError,
    PluginError,
    SiteResolutionError,
    SubspaceError,
    UnitLocationError,
    VeneError,
    nearest,
)

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
