"""Transient hook points: tensors that no module returns, made hookable for the span of a call.

Some tensors a researcher wants to read or replace are never the input or output of a module: the
attention probabilities (computed inside a function in transformers 5), the query/key/value parts
of a fused projection whose layout is not a plain ``chunk`` (GPT-NeoX interleaves them per head;
Phi-3's parts differ in width under grouped-query attention), a mixture-of-experts router's logits
seen as ``[batch, seq, experts]``. For each, a :class:`Probe` (stored as the component's
``ComponentSpec.context``) knows how to route the tensor through a :class:`HookPoint` child module,
so the engine hooks it like any other module output.

A probe is *bound* to the module that owns the hook point when a site is resolved
(:meth:`Probe.bind`); the bound probe is the site's ``context``. Entering it adds the hook point
(and whatever makes the tensor flow through it); leaving it removes exactly that and restores what
it changed, also on error. Nothing stays on the model between calls.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from attrs import frozen
from torch import Tensor, nn

from vene import SiteResolutionError, VeneError
from vene.sites import get_module

__all__ = [
    "HookPoint",
    "Probe",
    "BoundProbe",
    "FusedSplit",
    "ATTENTION_WEIGHT",
    "VENE_EAGER",
    "attention_probabilities",
    "attention_eager_function",
    "switch_attention_implementation",
    "config_of",
    "add_point",
    "chain",
    "store_input_shape",
    "Undo",
]

ATTENTION_WEIGHT = "vene_attention_weight"
"""Name of the hook point added to an attention module for ``attention_weight``."""

VENE_EAGER = "vene_eager"
"""The attention implementation used while ``attention_weight`` is hooked: the model's own eager
attention, with the probabilities passed through the attention module's hook point."""

Undo = Callable[[], None]


class HookPoint(nn.Module):
    """An identity module: the place where a probed tensor can be hooked."""

    def forward(self, x: Tensor) -> Tensor:
        return x


@frozen
class Probe:
    """``ComponentSpec.context`` of a component whose tensor needs a transient hook point.

    The last ``depth`` segments of the component's path are created by the probe, under the
    module named by the path before them (the *owner*). ``install(model, owner_path)`` adds the hook
    point(s) and returns a function that undoes exactly what it did; it does nothing (and returns a
    no-op) when an enclosing call already installed them. ``check(owner)`` returns a message when
    this model cannot be probed (too old a transformers, say), or None.
    """

    install: Callable[[nn.Module, str], Undo]
    depth: int = 1
    check: Callable[[nn.Module], str | None] | None = None

    def bind(self, owner: str) -> BoundProbe:
        return BoundProbe(probe=self, owner=owner)

    def __call__(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        raise VeneError(
            "this site's probe was not bound to a module; resolve sites through "
            "vene_hf.architectures.resolve_site (or IntervenableModel), not ComponentSpec.site."
        )


@frozen
class BoundProbe:
    """A probe bound to its owner module's path: the ``Site.context`` the engine enters."""

    probe: Probe
    owner: str

    def __call__(self, model: nn.Module) -> contextlib.AbstractContextManager[None]:
        return _installed(model, self)


@contextlib.contextmanager
def _installed(model: nn.Module, bound: BoundProbe) -> Iterator[None]:
    undo = bound.probe.install(model, bound.owner)
    try:
        yield
    finally:
        undo()


def add_point(owner: nn.Module, name: str, point: nn.Module) -> Undo:
    owner.add_module(name, point)

    def undo() -> None:
        if owner._modules.get(name) is point:
            del owner._modules[name]

    return undo


def store_input_shape(store: dict[str, Any]) -> Any:
    """A forward pre-hook (``with_kwargs=True``) that records the input's leading shape in
    ``store["shape"]``: MoE blocks flatten tokens before routing, and the hooks reshape back."""

    def pre(module: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["hidden_states"]
        store["shape"] = x.shape[:-1]

    return pre


def chain(undos: list[Undo]) -> Undo:
    def undo() -> None:
        # undo in reverse order; keep going if one fails, then re-raise the first error
        error: BaseException | None = None
        for u in reversed(undos):
            try:
                u()
            except BaseException as e:  # noqa: BLE001 - every undo must run; re-raised below
                error = error or e
        if error is not None:
            raise error

    return undo


# -------------------------------------------------------------------------------------------
# attention probabilities
# -------------------------------------------------------------------------------------------


@functools.cache
def _eager_of_class(cls: type) -> Callable[..., Any] | None:
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        fn = getattr(module, "eager_attention_forward", None)
        if callable(fn):
            return fn
    return None


def attention_eager_function(module: nn.Module) -> Callable[..., Any] | None:
    """The eager attention function of ``module``'s modeling file (transformers >= 4.48)."""
    return _eager_of_class(cast(Any, type(module)))  # classes hash; typeshed's Module.__hash__ reads as unhashable


def _vene_eager_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    *args: Any,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """The model's own eager attention; probabilities then pass through the module's hook point.

    The eager function computes the output and the probabilities exactly as ``"eager"`` does. When
    the hook point changes the probabilities, the output is recomputed from them (``probs @ V``
    with key/value heads repeated for grouped-query attention), so the change reaches the model.
    """
    eager = attention_eager_function(module)
    if eager is None:  # pragma: no cover - resolution refuses such modules
        raise VeneError(f"{type(module).__name__} has no eager attention function to probe.")
    out, probs = eager(module, query, key, value, attention_mask, *args, **kwargs)
    point = module._modules.get(ATTENTION_WEIGHT)
    if point is None or probs is None:
        return out, probs
    new = point(probs)
    if new is probs:
        return out, probs
    repeat = new.shape[1] // value.shape[1]
    v = value.repeat_interleave(repeat, dim=1) if repeat > 1 else value
    out = torch.matmul(new.to(v.dtype), v).transpose(1, 2).contiguous()
    return out, new


@functools.cache
def _register_vene_eager() -> None:
    """Register :data:`VENE_EAGER` with transformers (once; a new name changes nothing else)."""
    try:
        from transformers.modeling_utils import AttentionInterface

        AttentionInterface.register(VENE_EAGER, _vene_eager_attention)
    except ImportError:  # transformers 4.48-4.49: a plain dict
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        ALL_ATTENTION_FUNCTIONS[VENE_EAGER] = _vene_eager_attention
    try:
        from transformers.masking_utils import AttentionMaskInterface, eager_mask
    except ImportError:  # transformers 4.x before masking_utils: models build eager masks themselves
        return
    AttentionMaskInterface.register(VENE_EAGER, eager_mask)


def _configs(model: nn.Module) -> list[Any]:
    """Every transformers config reachable from the model's modules, and their sub-configs."""
    from transformers import PretrainedConfig

    seen: dict[int, Any] = {}
    todo = [getattr(m, "config", None) for m in model.modules()]
    while todo:
        c = todo.pop()
        if not isinstance(c, PretrainedConfig) or id(c) in seen:
            continue
        seen[id(c)] = c
        todo.extend(getattr(c, key, None) for key in getattr(c, "sub_configs", {}) or {})
    return list(seen.values())


_MISSING = object()
_ATTR = "_attn_implementation_internal"


def switch_attention_implementation(model: nn.Module, name: str) -> Undo:
    """Set every config of ``model`` to attention implementation ``name``; return the undo.

    The stored value is saved and restored as it was (including "not set"), not re-derived.
    """
    saved = [(c, vars(c).get(_ATTR, _MISSING)) for c in _configs(model)]
    for c, _ in saved:
        vars(c)[_ATTR] = name

    def undo() -> None:
        for c, old in saved:
            if old is _MISSING:
                vars(c).pop(_ATTR, None)
            else:
                vars(c)[_ATTR] = old

    return undo


def _install_attention(model: nn.Module, path: str) -> Undo:
    owner = get_module(model, path)
    if ATTENTION_WEIGHT in owner._modules:  # an enclosing call installed it
        return lambda: None
    _register_vene_eager()
    undos = [add_point(owner, ATTENTION_WEIGHT, HookPoint())]
    try:
        undos.append(switch_attention_implementation(model, VENE_EAGER))
    except BaseException:
        chain(undos)()
        raise
    return chain(undos)


def _check_attention(owner: nn.Module) -> str | None:
    try:
        from transformers import modeling_utils
    except ImportError:  # pragma: no cover - vene-hf depends on transformers
        return "attention_weight needs transformers."
    if attention_eager_function(owner) is None or not hasattr(modeling_utils, "ALL_ATTENTION_FUNCTIONS"):
        return (
            f"attention_weight cannot be probed on {type(owner).__name__}: its attention does not "
            "go through transformers' attention functions (Llama-style families use them from "
            "transformers 4.48, others such as BERT, T5 and GPT-J from transformers 5). Upgrade "
            "transformers, or hook the probabilities with a dotted path to the module that "
            "returns them."
        )
    return None


attention_probabilities = Probe(install=_install_attention, depth=1, check=_check_attention)
"""Probe for ``attention_weight``: path ``(<attention module>..., ATTENTION_WEIGHT)``.

The probabilities are ``[batch, heads, query, key]`` (``Layout.BHSD``). While the site is in use
the model runs its eager attention (switched from SDPA or any other implementation, and switched
back afterwards), so ``output_attentions`` style probabilities exist and an intervention on them
changes the attention output.
"""


# -------------------------------------------------------------------------------------------
# fused projections
# -------------------------------------------------------------------------------------------


@frozen
class FusedSplit:
    """Install function for a fused projection: split its output into named parts.

    ``layout(config)`` returns ``(sizes, heads)``: with ``heads`` None the output is the
    concatenation of parts of widths ``sizes`` (Phi-3's ``qkv_proj``); otherwise it is laid out per
    head, each of ``heads`` heads holding its parts of widths ``sizes`` in turn (GPT-NeoX's
    ``query_key_value``: ``[q_h, k_h, v_h]`` for each head h). Each part ``[batch, seq, width]``
    passes through the hook point named ``names[i]`` on the projection.
    """

    names: tuple[str, ...]
    layout: Callable[[Any], tuple[tuple[int, ...], int | None]]

    def __call__(self, model: nn.Module, path: str) -> Undo:
        owner = get_module(model, path)
        if self.names[0] in owner._modules:
            return lambda: None
        config = config_of(model, path)
        sizes, heads = self.layout(config)
        names = self.names
        undos = [add_point(owner, n, HookPoint()) for n in names]

        def split(out: Tensor) -> list[Tensor]:
            if heads is None:
                return list(out.split(sizes, dim=-1))
            lead = out.shape[:-1]
            parts = out.view(*lead, heads, -1).split(sizes, dim=-1)
            return [p.reshape(*lead, heads * w) for p, w in zip(parts, sizes)]

        def join(parts: list[Tensor]) -> Tensor:
            if heads is None:
                return torch.cat(parts, dim=-1)
            lead = parts[0].shape[:-1]
            per_head = [p.reshape(*lead, heads, w) for p, w in zip(parts, sizes)]
            return torch.cat(per_head, dim=-1).reshape(*lead, -1)

        def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor | None:
            parts = split(out)
            new = [cast(nn.Module, module._modules[n])(p) for n, p in zip(names, parts)]
            if all(a is b for a, b in zip(new, parts)):
                return None
            return join(new)

        handle = owner.register_forward_hook(hook)
        undos.append(handle.remove)
        return chain(undos)


def config_of(model: nn.Module, path: str) -> Any:
    """The config that governs the module at ``path``: its own, else the nearest enclosing one."""
    parts = path.split(".") if path else []
    for n in range(len(parts), -1, -1):
        config = getattr(get_module(model, ".".join(parts[:n])), "config", None)
        if config is not None:
            return config
    raise SiteResolutionError(f"cannot find the transformers config that governs {path!r}.")
