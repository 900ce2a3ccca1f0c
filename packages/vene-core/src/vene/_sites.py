"""Sites: where on a model an intervention reads and writes.

A :class:`Site` is the resolved, concrete form of a representation: a module path, the side of the
call (input or output), which element of the arguments or of the returned value holds the tensor,
how that tensor is laid out, and how to split it into heads. Resolvers (plugins) turn an abstract
representation such as ``layer 3, "mlp_output"`` into a Site; the engine never looks at component
names again after that.

Architecture knowledge is typed data: a family is a mapping from component name to a
:class:`ComponentSpec`, whose module path is a tuple of segments with the :data:`LAYER` (and
:data:`EXPERT`) placeholders, and whose dimensions are functions of the model's config.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import attrs
from attrs import field, frozen

from ._errors import ConfigError, SiteResolutionError, nearest
from ._units import Layout, Side, Unit

if TYPE_CHECKING:
    from torch import nn

    from ._config import RepresentationConfig

__all__ = [
    "Side",
    "Unit",
    "Layout",
    "Site",
    "ComponentSpec",
    "LAYER",
    "EXPERT",
    "get_module",
    "parse_dotted_component",
    "resolve_from_table",
]


def _opt_positive(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise ConfigError(f"Site.{attribute.name} must be a positive int or None, got {value!r}")


def _chunk_ok(instance: Any, attribute: attrs.Attribute, value: tuple[int, int] | None) -> None:
    if value is not None and not (len(value) == 2 and 0 <= value[0] < value[1]):
        raise ConfigError(f"Site.chunk must be (i, n) with 0 <= i < n, got {value!r}")


@frozen
class Site:
    """A resolved place on a model.

    ``module`` is a path as ``model.named_modules()`` spells it (``""`` is the model itself).
    On the ``OUTPUT`` side, ``index`` picks an element of a tuple (or a key of a mapping) the module
    returns; a plain tensor output ignores it. On the ``INPUT`` side, ``index`` is a positional
    argument index, and ``keyword`` the name to look for when the argument is passed by keyword.
    ``chunk=(i, n)`` takes the i-th of n equal slices of the last dimension (fused q/k/v
    projections). ``heads`` splits the features into that many heads for ``h`` and ``h.pos`` units,
    ``dim`` is the width of one unit (per head when split), when known. ``context``, if set, is
    entered around every call that uses the site (for instance to make an attention layer compute
    its probabilities explicitly).
    """

    module: str
    side: Side = field(converter=Side)
    index: int | str = 0
    keyword: str | None = None
    layout: Layout = field(default=Layout.BSD, converter=Layout)
    dim: int | None = field(default=None, validator=_opt_positive)
    heads: int | None = field(default=None, validator=_opt_positive)
    chunk: tuple[int, int] | None = field(
        default=None, converter=attrs.converters.optional(tuple), validator=_chunk_ok
    )
    context: Callable[[nn.Module], AbstractContextManager[Any]] | None = field(
        default=None, eq=False
    )

    def unit_dim(self, unit: Unit) -> int | None:
        """The width of one gathered unit for ``unit``: per head for head units, else the whole."""
        if self.dim is None or self.heads is None:
            return self.dim
        return self.dim if unit.has_heads else self.dim * self.heads


class _Placeholder:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


LAYER = _Placeholder("LAYER")
"""Placeholder in a :class:`ComponentSpec` path for the representation's layer."""
EXPERT = _Placeholder("EXPERT")
"""Placeholder in a :class:`ComponentSpec` path for the representation's ``moe_key``."""


def _segments(value: Any) -> tuple[str | _Placeholder, ...]:
    return tuple(value)


ConfigFn = Callable[..., int]
"""Reads a dimension from a model config: ``f(config)`` or ``f(config, layer)``."""


def _read(fn: ConfigFn, config: Any, layer: int) -> int:
    import inspect

    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n = 1
    return int(fn(config, layer) if n >= 2 else fn(config))


@frozen
class ComponentSpec:
    """One abstract component of an architecture family, as data.

    ``path`` is a tuple of module-path segments, with :data:`LAYER` / :data:`EXPERT` standing for
    the layer index and the ``moe_key``; ``dim`` and ``heads`` read the model config.
    """

    path: tuple[str | _Placeholder, ...] = field(converter=_segments)
    side: Side = field(converter=Side)
    dim: ConfigFn | None = None
    heads: ConfigFn | None = None
    index: int | str = 0
    keyword: str | None = None
    layout: Layout = field(default=Layout.BSD, converter=Layout)
    chunk: tuple[int, int] | None = None
    context: Callable[[nn.Module], AbstractContextManager[Any]] | None = field(
        default=None, eq=False
    )

    def site(self, config: Any, layer: int, moe_key: Any = None, prefix: str = "") -> Site:
        segments: list[str] = []
        for seg in self.path:
            if seg is LAYER:
                segments.append(str(layer))
            elif seg is EXPERT:
                if moe_key is None:
                    raise ConfigError(
                        "this component belongs to one expert of a mixture-of-experts layer; "
                        "set moe_key=<expert index> on the representation."
                    )
                segments.append(str(moe_key))
            else:
                segments.append(str(seg))
        path = ".".join(s for s in segments if s)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        return Site(
            module=path,
            side=self.side,
            index=self.index,
            keyword=self.keyword,
            layout=self.layout,
            dim=_read(self.dim, config, layer) if self.dim is not None else None,
            heads=_read(self.heads, config, layer) if self.heads is not None else None,
            chunk=self.chunk,  # type: ignore[arg-type]  # attrs converter: tuple in, tuple out
            context=self.context,
        )


def get_module(model: nn.Module, path: str) -> nn.Module:
    """Return the submodule at ``path`` (``named_modules`` spelling), with a helpful error."""
    if path == "":
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise SiteResolutionError(
            f"the model has no module {path!r}.{nearest(path, names)} "
            "Module paths are spelled as in model.named_modules()."
        ) from None


_INDEX = re.compile(r"\[(-?\d+)\]")


def parse_dotted_component(component: str) -> tuple[str, Side] | None:
    """Split ``"transformer.h[6].mlp.output"`` into ``("transformer.h.6.mlp", Side.OUTPUT)``.

    Returns None when ``component`` is not a dotted path ending in ``.input`` or ``.output``.
    """
    if not isinstance(component, str):
        return None
    normal = _INDEX.sub(r".\1", component)
    head, _, tail = normal.rpartition(".")
    if tail not in ("input", "output"):
        if normal in ("input", "output"):
            return "", Side(normal)
        return None
    return head, Side(tail)


def resolve_from_table(
    table: Mapping[str, ComponentSpec],
    model: nn.Module,
    representation: RepresentationConfig,
    *,
    config: Any,
    num_layers: int,
    prefix: str = "",
    family: str = "",
) -> Site:
    """Resolve an abstract component through a family table, with clear errors."""
    comp = representation.component
    spec = table.get(comp)
    if spec is None:
        raise SiteResolutionError(
            f"unknown component {comp!r} for {family or type(model).__name__}.{nearest(comp, table)} "
            f"Components: {', '.join(sorted(table))}; or give a dotted module path such as "
            "'layers[3].mlp.output'."
        )
    layer = representation.layer
    uses_layer = any(seg is LAYER for seg in spec.path)
    if uses_layer and not (0 <= layer < num_layers):
        raise SiteResolutionError(
            f"layer {layer} is out of range for {family or type(model).__name__}, which has "
            f"{num_layers} layers (0..{num_layers - 1})."
        )
    site = spec.site(config, layer, representation.moe_key, prefix)
    get_module(model, site.module)  # fail now, not during the first forward
    return site
