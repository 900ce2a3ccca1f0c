"""pyvene's extension tables, read into a resolver: ``type_to_module_mapping`` and friends.

pyvene users add a model by putting an entry in two dicts keyed by the model class::

    pv.type_to_module_mapping[MyModel] = {"block_output": ("layers[%s]", pv.models.constants.CONST_OUTPUT_HOOK)}
    pv.type_to_dimension_mapping[MyModel] = {"block_output": ("hidden_size",)}

vene keeps both dicts (they start empty: vene's own families live in typed resolver tables) and
:func:`resolve_from_pyvene_tables`, registered with core's built-ins, reads an entry the user
added. An entry is ``(path template with %s for the layer, hook constant, *splits)`` where a split
is ``(split_three, i)`` / ``(split_half, i)`` (a slice of a fused projection) or
``(split_head_and_permute, "n_head")`` (heads, their count read from the config); a dimension is
a tuple of alternatives such as ``"n_embd"``, ``"n_embd/n_head"`` or ``"n_embd*4"``, the first
one the config has wins. The plugin way (a ``vene_resolve_site`` hook) is in docs/plugins.md.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ._errors import SiteResolutionError
from ._sites import Side, Site, get_module
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

    from ._config import RepresentationConfig

__all__ = [
    "type_to_module_mapping",
    "type_to_dimension_mapping",
    "CONST_INPUT_HOOK",
    "CONST_OUTPUT_HOOK",
    "CONST_GRAD_HOOK",
    "split_heads",
    "split_half",
    "split_three",
    "split_and_select",
    "split_head_and_permute",
    "resolve_from_pyvene_tables",
]

# pyvene's hook constants: the name of the torch registration method for each side
CONST_INPUT_HOOK = "register_forward_pre_hook"
CONST_OUTPUT_HOOK = "register_forward_hook"
CONST_GRAD_HOOK = "register_hook"

# The user's entries, keyed by model class (pyvene's extension point, kept as data for it).
type_to_module_mapping: dict[type, dict[str, tuple[Any, ...]]] = {}
type_to_dimension_mapping: dict[type, dict[str, tuple[str, ...]]] = {}


def split_heads(tensor: Tensor, num_heads: int, attn_head_size: int) -> Tensor:
    """``[batch, seq, heads*size]`` -> ``[batch, heads, seq, size]``."""
    return tensor.view(*tensor.shape[:-1], num_heads, attn_head_size).permute(0, 2, 1, 3)


def split_half(x: Tensor, selct_index: int) -> Tensor:
    """The ``selct_index``-th half of the last dimension."""
    return x.chunk(2, dim=-1)[selct_index]


def split_three(x: Tensor, selct_index: int) -> Tensor:
    """The ``selct_index``-th third of the last dimension (fused q/k/v)."""
    return x.chunk(3, dim=-1)[selct_index]


def split_and_select(x: Tensor, num_slice: int, selct_index: int) -> Tensor:
    """The ``selct_index``-th of ``num_slice`` equal slices of the last dimension."""
    return x.chunk(num_slice, dim=-1)[selct_index]


def split_head_and_permute(x: Tensor, num_head: int) -> Tensor:
    """:func:`split_heads` with the head size read from the width."""
    return split_heads(x, num_head, x.shape[-1] // num_head)


_TERM = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*|\d+)\s*(?:([*/])\s*(.+))?$")


def _eval_dim(expr: str, config: Any) -> int | None:
    """``"a"``, ``"a*4"``, ``"a/b"`` over config attributes and ints; None if an attribute is missing."""
    m = _TERM.match(expr)
    if m is None:
        raise SiteResolutionError(
            f"cannot read the dimension {expr!r}: use config attribute names and integers joined "
            "by * or /, e.g. 'n_embd/n_head'."
        )
    name, op, rest = m.groups()
    left = int(name) if name.isdigit() else getattr(config, name, None)
    if left is None:
        return None
    if op is None:
        return int(left)
    right = _eval_dim(rest, config)
    if right is None:
        return None
    return int(left) * right if op == "*" else int(left) // right


def _dimension(cls: type, component: str, model: nn.Module) -> int | None:
    alternatives = type_to_dimension_mapping.get(cls, {}).get(component)
    if not alternatives:
        return None
    config = getattr(model, "config", model)
    for expr in alternatives:
        value = _eval_dim(expr, config)
        if value is not None:
            return value
    return None


@hookimpl(specname="vene_resolve_site", tryfirst=True)
def resolve_from_pyvene_tables(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    """A Site from an entry the user added to ``type_to_module_mapping``; None when there is none."""
    cls = type(model)
    entry = type_to_module_mapping.get(cls, {}).get(representation.component)
    if entry is None:
        return None
    if len(entry) < 2 or not isinstance(entry[0], str):
        raise SiteResolutionError(
            f"type_to_module_mapping[{cls.__name__}][{representation.component!r}] must be "
            f"(path template, CONST_INPUT_HOOK | CONST_OUTPUT_HOOK, *splits), got {entry!r}."
        )
    template, hook, *splits = entry
    if hook not in (CONST_INPUT_HOOK, CONST_OUTPUT_HOOK):
        raise SiteResolutionError(
            f"type_to_module_mapping[{cls.__name__}][{representation.component!r}]: hook {hook!r} is "
            "not CONST_INPUT_HOOK or CONST_OUTPUT_HOOK (gradient hooks are not sites)."
        )
    path = (template % representation.layer) if "%s" in template else template
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    get_module(model, path)  # a clear error for a path the model does not have
    chunk: tuple[int, int] | None = None
    heads: int | None = None
    config = getattr(model, "config", model)
    for split in splits:
        fn, arg = split[0], split[1]
        if fn is split_three:
            chunk = (int(arg), 3)
        elif fn is split_half:
            chunk = (int(arg), 2)
        elif fn is split_head_and_permute:
            heads = _eval_dim(arg, config) if isinstance(arg, str) else int(arg)
        else:
            raise SiteResolutionError(
                f"type_to_module_mapping[{cls.__name__}][{representation.component!r}]: unknown split "
                f"{fn!r}; use split_three, split_half or split_head_and_permute, or write a "
                "vene_resolve_site plugin (docs/plugins.md)."
            )
    side = Side.INPUT if hook == CONST_INPUT_HOOK else Side.OUTPUT
    dim = _dimension(cls, representation.component, model)
    # mypy reads Site.chunk's attrs converter (tuple) as wanting an Iterable[_T_co]; a pair is one
    return Site(module=path, side=side, dim=dim, heads=heads, chunk=chunk)  # type: ignore[arg-type]
