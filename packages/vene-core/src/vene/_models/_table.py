"""Shared resolution for the reference models: their component tables are class attributes."""

from __future__ import annotations

from typing import Any, ClassVar

from .._sites import ComponentSpec, Site, resolve_from_table


class TableResolved:
    """Mixin: ``vene_components`` (a table) and ``vene_prefix`` say where the components are."""

    vene_components: ClassVar[dict[str, ComponentSpec]]
    vene_prefix: ClassVar[str] = ""

    @classmethod
    def vene_resolve(cls, model: Any, representation: Any) -> Site:
        return resolve_from_table(
            cls.vene_components,
            model,
            representation,
            config=model.config,
            num_layers=model.config.n_layer,
            prefix=cls.vene_prefix,
            family=cls.__name__,
        )
