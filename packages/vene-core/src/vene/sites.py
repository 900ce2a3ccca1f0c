"""The public API for plugin authors who teach vene an architecture: sites and their lookup.

A resolver plugin (``vene_resolve_site``) turns a representation into a :class:`Site`. What it
needs is here: the site record and its enums (:class:`Side`, :class:`Unit`, :class:`Layout`),
an architecture family as typed data (:class:`ComponentSpec` with the :data:`LAYER` and
:data:`EXPERT` placeholders) resolved by :func:`resolve_from_table`, module lookup by dotted
path (:func:`get_module`, :func:`parse_dotted_component`) and the nearest-name suggestion every
vene error uses (:func:`nearest`).
"""

from __future__ import annotations

from ._errors import nearest
from ._sites import (
    EXPERT,
    LAYER,
    ComponentSpec,
    Site,
    get_module,
    parse_dotted_component,
    resolve_from_table,
)
from ._units import Layout, Side, Unit

__all__ = [
    "Site",
    "Side",
    "Unit",
    "Layout",
    "ComponentSpec",
    "LAYER",
    "EXPERT",
    "get_module",
    "parse_dotted_component",
    "resolve_from_table",
    "nearest",
]
