"""Core's built-in plugin: static interventions and the dotted-path resolver.

Registered under the name ``"core"`` through the same plugin manager as any third-party plugin.
Importing it imports no torch (each hook imports what it needs when called), so that the ``vene``
command can register every plugin and list its subcommands quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import SiteResolutionError, nearest
from .hookspecs import hookimpl
from .plugins import resolver_hint

if TYPE_CHECKING:
    from torch import nn

    from ._config import RepresentationConfig
    from ._sites import Site


@hookimpl
def vene_intervention_types() -> Any:
    from ._interventions import STATIC_INTERVENTIONS

    return STATIC_INTERVENTIONS


@hookimpl
def vene_site_families() -> list[str]:
    """vene's reference models, any module by dotted path, and pyvene's type_to_module_mapping."""
    return ["mlp", "gru", "dotted module paths", "type_to_module_mapping entries"]


@hookimpl(specname="vene_resolve_site", tryfirst=True)
def resolve_pyvene_table_entry(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    """An entry the user added to pyvene's ``type_to_module_mapping`` wins over every resolver."""
    from ._compat_mapping import resolve_from_pyvene_tables

    return resolve_from_pyvene_tables(model, representation)


@hookimpl(specname="vene_resolve_site")
def resolve_reference_model(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    """Core's own models first (they carry their table), then dotted paths."""
    from ._sites import parse_dotted_component

    table = getattr(type(model), "vene_components", None)
    if table is not None and parse_dotted_component(representation.component) is None:
        resolve = type(model).vene_resolve  # type: ignore[attr-defined]  # set on vene's own models
        return resolve(model, representation)
    return None


def _infer_dim(module: nn.Module, side: str) -> int | None:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return module.in_features if side == "input" else module.out_features
    if isinstance(module, nn.Embedding):
        return module.embedding_dim if side == "output" else None
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        return int(module.normalized_shape[0])
    if isinstance(module, (nn.GRUCell, nn.RNNCell, nn.LSTMCell)):
        return module.input_size if side == "input" else module.hidden_size
    return None


@hookimpl(trylast=True, specname="vene_resolve_site")
def resolve_dotted_path(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    from ._sites import Site, get_module, parse_dotted_component

    parsed = parse_dotted_component(representation.component)
    if parsed is None:
        comps = getattr(type(model), "vene_components", None)
        known = sorted(comps) if comps else []
        hint = (
            f" Abstract components such as {representation.component!r} need a resolver for "
            f"{type(model).__name__}: {resolver_hint()}"
            if not known
            else f"{nearest(representation.component, known)} Components: {', '.join(known)}."
        )
        raise SiteResolutionError(
            f"cannot resolve component {representation.component!r} on {type(model).__name__}.{hint} "
            "Any module can be reached by a dotted path ending in .input or .output, e.g. "
            "'layers[3].mlp.output'."
        )
    path, side = parsed
    module = get_module(model, path)
    return Site(module=path, side=side, dim=_infer_dim(module, side.value))


@hookimpl(trylast=True)
def vene_sweep_executor(name: str, options: Any) -> Any:
    """Core's ``"local"`` executor: the tasks of a sweep run one after another in this process."""
    if name != "local":
        return None
    from .patching import LocalExecutor

    return LocalExecutor()
