"""The hook engine: gather units from a site, apply interventions, scatter them back.

One forward of the wrapped model is a *run*. A run is given, per site, the *writes*
(interventions to apply) and the *captures* (units to read for a later run). Each site gets one
forward hook (or pre-hook, for inputs) registered for the run only and removed in a ``finally``;
hooks others placed on the model are never touched. Gather and scatter use index tensors over a
``[batch, units, width]`` view of the site's tensor; scatter is out of place so autograd sees
every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from attrs import define, field
from torch import Tensor, nn

from ._errors import BatchSizeError, UnitLocationError, VeneError
from ._interventions import DistributedRepresentationIntervention, Intervention, InterventionOutput
from ._locations import Loc
from ._sites import Site, get_module
from ._units import Layout, Side, Unit

__all__ = ["Write", "Capture", "RunState", "run_hooks", "StopForward"]


class StopForward(BaseException):
    """Raised from a hook to end a source run once every needed site has been read.

    A BaseException so that ``except Exception`` blocks inside model code do not swallow it.
    """


# ---------------------------------------------------------------------------------------------
# views of a site's tensor as [batch, N, width]
# ---------------------------------------------------------------------------------------------


def _heads_view(x: Tensor, site: Site) -> Tensor:
    """[B, H, S, d] view of the site tensor."""
    if site.layout is Layout.BHSD:
        return x
    if site.heads is None:
        raise UnitLocationError(
            f"units 'h'/'h.pos' need a head component; {site.module!r} is not split into heads. "
            "Use a head_* component or unit 'pos'."
        )
    if site.layout is Layout.BD:
        x = x.unsqueeze(1)
    b, s, f = x.shape
    return x.view(b, s, site.heads, f // site.heads).transpose(1, 2)


def _heads_unview(v: Tensor, site: Site, like: Tensor) -> Tensor:
    if site.layout is Layout.BHSD:
        return v
    out = v.transpose(1, 2).reshape(v.shape[0], v.shape[2], -1)
    return out.squeeze(1) if site.layout is Layout.BD else out


def _seq_view(x: Tensor, site: Site) -> Tensor:
    """[B, S, F] view of the site tensor."""
    if site.layout is Layout.BD:
        return x.unsqueeze(1)
    if site.layout is Layout.BHSD:
        b, h, s, d = x.shape
        return x.transpose(1, 2).reshape(b, s, h * d)
    return x


def _seq_unview(v: Tensor, site: Site, like: Tensor) -> Tensor:
    if site.layout is Layout.BD:
        return v.squeeze(1)
    if site.layout is Layout.BHSD:
        b, h, s, d = like.shape
        return v.view(b, s, h, d).transpose(1, 2)
    return v


def _check(n: int, bound: int, what: str, site: Site) -> None:
    if n >= bound:
        raise UnitLocationError(
            f"{what} {n} is out of range at {site.module or '<model>'}.{site.side.value}, "
            f"which has {bound} {what}s (0..{bound - 1}). Check unit_locations."
        )


def _flat_index(loc: Loc, v: Tensor, site: Site, repeat: int) -> tuple[Tensor, tuple[int, ...]]:
    """Index over the N axis of a flattened view, and the shape of the gathered units."""
    b = v.shape[0]
    if loc.unit is Unit.H:
        _, h, s, d = v.shape
        _check(loc.max_head, h, "head", site)
        heads = loc.on("heads", v.device, repeat)
        idx = heads[:, :, None] * s + torch.arange(s, device=v.device)
        return idx.reshape(b, -1), (b, heads.shape[1], s, d)
    if loc.unit is Unit.H_POS:
        _, h, s, d = v.shape
        _check(loc.max_head, h, "head", site)
        _check(loc.max_index, s, "position", site)
        heads = loc.on("heads", v.device, repeat)
        pos = loc.on("index", v.device, repeat)
        idx = heads[:, :, None] * s + pos[:, None, :]
        return idx.reshape(b, -1), (b, heads.shape[1], pos.shape[1], d)
    _, s, f = v.shape
    _check(loc.max_index, s, "position", site)
    pos = loc.on("index", v.device, repeat)
    return pos, (b, pos.shape[1], f)


def _to_view(x: Tensor, site: Site, unit: Unit) -> Tensor:
    return _heads_view(x, site) if unit.has_heads else _seq_view(x, site)


def _from_view(v: Tensor, site: Site, unit: Unit, like: Tensor) -> Tensor:
    return _heads_unview(v, site, like) if unit.has_heads else _seq_unview(v, site, like)


def _repeat_for(x: Tensor, loc: Loc) -> int:
    if not loc.batch or x.shape[0] == loc.batch:
        return 1
    if x.shape[0] % loc.batch == 0:
        return x.shape[0] // loc.batch  # generation with beams / several sequences per prompt
    raise BatchSizeError(
        f"the site's tensor has batch size {x.shape[0]}, but unit_locations were given for "
        f"{loc.batch} examples."
    )


def gather(x: Tensor, site: Site, loc: Loc) -> Tensor:
    """The units of ``x`` at ``loc`` (for t units and whole locations, the whole view)."""
    if loc.unit is Unit.T or loc.whole:
        return _to_view(x, site, loc.unit) if loc.unit.has_heads else x
    v = _to_view(x, site, loc.unit)
    idx, shape = _flat_index(loc, v, site, _repeat_for(x, loc))
    flat = v.reshape(v.shape[0], -1, v.shape[-1])
    units = flat.gather(1, idx[:, :, None].expand(-1, -1, flat.shape[-1]))
    return units.view(shape)


def scatter(x: Tensor, site: Site, loc: Loc, units: Tensor) -> Tensor:
    """``x`` with the units at ``loc`` replaced by ``units`` (out of place)."""
    if loc.unit is Unit.T or loc.whole:
        if loc.unit.has_heads:
            return _from_view(units, site, loc.unit, x)
        return units
    v = _to_view(x, site, loc.unit)
    idx, _ = _flat_index(loc, v, site, _repeat_for(x, loc))
    flat = v.reshape(v.shape[0], -1, v.shape[-1])
    units = units.reshape(flat.shape[0], -1, flat.shape[-1]).to(flat.dtype)
    new = flat.scatter(1, idx[:, :, None].expand(-1, -1, flat.shape[-1]), units)
    return _from_view(new.view(v.shape), site, loc.unit, x)


def _flatten_units(units: Tensor, unit: Unit) -> Tensor:
    """Distributed interventions see the units concatenated: [B, U*D] (heads: [B, S, H*d])."""
    if unit is Unit.POS or unit is Unit.T:
        return units.reshape(units.shape[0], -1)
    return units.transpose(1, 2).reshape(units.shape[0], units.shape[2], -1)


def _unflatten_units(flat: Tensor, unit: Unit, shape: torch.Size) -> Tensor:
    if unit is Unit.POS or unit is Unit.T:
        return flat.reshape(shape)
    b, h, s, d = shape
    return flat.reshape(b, s, h, d).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# actions in a run
# ---------------------------------------------------------------------------------------------


@define(slots=True)
class Write:
    """Apply ``intervention`` at ``loc``; its source is ``source`` (units, a constant, or None).

    For ``t`` units ``source`` is ``[batch, units, ...]``: unit u feeds the call (timestep) that
    ``loc.index[:, u]`` names. ``active``, if set, picks the location per call (generation), or
    the location and the source for that call. ``adaptor`` (``as_adaptor=True``) also passes the
    module's input units as ``args``, pyvene's name for them.
    """

    key: str
    intervention: Intervention
    loc: Loc
    source: Any = None
    subspaces: Any = None
    kwargs: Mapping[str, Any] = field(factory=dict)
    collect: bool = False
    module_input: bool = False
    active: Callable[[RunState], Loc | tuple[Loc, Any] | None] | None = None
    adaptor: bool = False


@define(slots=True)
class Capture:
    """Read the units at ``loc`` for ``key``, from rows ``rows`` of the run's batch."""

    key: str
    loc: Loc
    rows: slice = slice(None)
    calls: tuple[int, ...] = ()


@define(slots=True)
class RunState:
    """Mutable state of one call (forward or generate): fresh every call, never kept."""

    captured: dict[str, Any] = field(factory=dict)
    collected: dict[str, list[Any]] = field(factory=dict)
    latents: dict[str, list[Any]] = field(factory=dict)
    step: int = -1
    start: int = 0
    prompt_len: int = 0
    pending: int = 0
    stop_when_done: bool = False
    calls: dict[int, int] = field(factory=dict)


def _one_unit_basis(iv: Intervention, units: Tensor, unit: Unit) -> bool:
    """A distributed intervention whose basis is one unit wide, given several units
    (``max_number_of_units=1`` and two positions): it acts on each unit in turn."""
    embed = iv.embed_dim
    if not isinstance(embed, int) or isinstance(embed, bool):
        return False
    return units.shape[1] > 1 and units.shape[-1] == embed


def _per_row(x: Tensor, loc: Loc, source: Any, subspaces: Any) -> tuple[Any, Any]:
    """Source and subspaces repeated like the locations when the tensor has ``k`` rows per
    example (beam search, ``num_return_sequences``): rows ``i*k .. i*k + k - 1`` are example i."""
    if not loc.batch or x.shape[0] == loc.batch:
        return source, subspaces
    k = _repeat_for(x, loc)
    if isinstance(source, Tensor) and source.dim() >= 2 and source.shape[0] == loc.batch:
        source = source.repeat_interleave(k, dim=0)
    if isinstance(subspaces, (list, tuple)) and len(subspaces) == loc.batch:
        subspaces = [row for row in subspaces for _ in range(k)]
    return source, subspaces


def _apply(
    w: Write,
    units: Tensor,
    loc: Loc,
    state: RunState,
    module_input: Tensor | None,
    source: Any,
    subspaces: Any = None,
) -> Tensor:
    iv = w.intervention
    unit = loc.unit
    distributed = (
        isinstance(iv, DistributedRepresentationIntervention)
        and not iv.keep_last_dim
        and not loc.whole
        and unit is not Unit.T
        and not _one_unit_basis(iv, units, unit)
    )
    base_in = _flatten_units(units, unit) if distributed else units
    if distributed and isinstance(source, Tensor) and source.shape == units.shape:
        source = _flatten_units(source, unit)
    kwargs = dict(w.kwargs)
    if module_input is not None:
        kwargs["module_input"] = _flatten_units(module_input, unit) if distributed else module_input
    if w.adaptor:
        # pyvene's adaptor interventions read the module's input as `args` (on an input site,
        # the input is the base itself)
        kwargs["args"] = kwargs.get("module_input", base_in)
    if isinstance(source, Tensor) and source.device != units.device:
        source = source.to(units.device)
    result = iv(base_in, source, subspaces, **kwargs)
    latent = None
    if isinstance(result, InterventionOutput):
        out, latent = result.output, result.latent
    else:
        out = result
    if w.collect:
        # a collection records what the intervention returns (of any width, e.g. an SAE's
        # latents) and leaves the model's tensor as it was, as in pyvene
        state.collected.setdefault(w.key, []).append(latent if latent is not None else out)
        return units
    if latent is not None:
        state.latents.setdefault(w.key, []).append(latent)
    if not isinstance(out, Tensor):
        raise VeneError(
            f"intervention {type(iv).__name__} returned {type(out).__name__}; it must return a "
            "tensor (or InterventionOutput) shaped like its base input."
        )
    if distributed:
        out = _unflatten_units(out, unit, units.shape)
    if out.shape != units.shape:
        raise VeneError(
            f"intervention {type(iv).__name__} returned shape {tuple(out.shape)} for units of "
            f"shape {tuple(units.shape)}; it must keep the shape."
        )
    return out


# ---------------------------------------------------------------------------------------------
# reading and writing the hooked value
# ---------------------------------------------------------------------------------------------


def _raw(container: Any, site: Site) -> Any:
    """The element of a module's output (or argument) that the site names, before any chunk."""
    if isinstance(container, Tensor):
        return container
    if isinstance(container, Mapping) or hasattr(container, "keys"):
        return container[site.index] if isinstance(site.index, str) else list(container.values())[site.index]
    if isinstance(container, Sequence) and isinstance(site.index, int):
        return container[site.index]
    return None


def _get(container: Any, site: Site) -> Tensor:
    """The site's tensor: the named element, sliced to its chunk of a fused projection."""
    x = _raw(container, site)
    if not isinstance(x, Tensor):
        raise VeneError(
            f"{site.module or '<model>'}.{site.side.value}[{site.index!r}] is "
            f"{type(x).__name__}, not a tensor; this site cannot be intervened on for this call."
        )
    if site.chunk is not None:
        i, n = site.chunk
        w = x.shape[-1] // n
        x = x[..., i * w : (i + 1) * w]
    return x


def _put(container: Any, site: Site, new: Tensor, old_full: Tensor | None) -> Any:
    if site.chunk is not None:
        i, n = site.chunk
        full = old_full
        assert full is not None  # the caller passes the unsliced tensor for chunked sites
        w = full.shape[-1] // n
        new = torch.cat([full[..., : i * w], new, full[..., (i + 1) * w :]], dim=-1)
    if isinstance(container, Tensor):
        return new
    if isinstance(container, Mapping) or hasattr(container, "keys"):
        key = site.index if isinstance(site.index, str) else list(container.keys())[site.index]
        out = type(container)(**{**dict(container.items()), key: new}) if not isinstance(
            container, dict
        ) else {**container, key: new}
        return out
    items = list(container)
    items[int(site.index)] = new
    return tuple(items) if isinstance(container, tuple) else items


def _input_tensor(args: tuple, kwargs: dict, site: Site) -> tuple[str, Any]:
    """Where the site's input lives: ('args', i) or ('kwargs', name)."""
    if isinstance(site.index, int) and site.index < len(args):
        return "args", site.index
    name = site.keyword if site.keyword is not None else (site.index if isinstance(site.index, str) else None)
    if name is not None and name in kwargs:
        return "kwargs", name
    if isinstance(site.index, int) and site.index == 0 and kwargs:
        # first input passed by keyword (hidden_states=...): take the first tensor keyword
        for k, v in kwargs.items():
            if isinstance(v, Tensor):
                return "kwargs", k
    raise VeneError(
        f"cannot find input {site.index!r} of {site.module or '<model>'}: it was called with "
        f"{len(args)} positional arguments and keywords {sorted(kwargs)}."
    )


class _SiteHook:
    """The one hook of a site in a run: applies its writes, then takes its captures."""

    def __init__(self, site: Site, writes: list[Write], captures: list[Capture], state: RunState):
        self.site = site
        self.writes = writes
        self.captures = captures
        self.state = state
        self.key = id(self)

    def _process(self, x: Tensor, module_input: Tensor | None) -> Tensor | None:
        state, site = self.state, self.site
        call = state.calls.get(self.key, 0)
        state.calls[self.key] = call + 1
        changed = False
        for w in self.writes:
            got = w.active(state) if w.active is not None else w.loc
            if got is None:
                continue
            loc, source = got if isinstance(got, tuple) else (got, w.source)
            source, subspaces = _per_row(x, loc, source, w.subspaces)
            if loc.unit is Unit.T and loc.index is not None:
                # recurrent unit: this call is one timestep; rows whose location names it change
                t_idx = loc.on("index", x.device, 1)
                if call > loc.max_index:
                    continue
                hit = t_idx == call  # [B, U]
                for u in range(t_idx.shape[1]):
                    # the source of timestep unit u: a [B, U, ...] tensor, or a constant
                    src = source
                    if isinstance(src, Tensor) and src.dim() == x.dim() + 1:
                        src = src[:, u]
                    new = _apply(w, x, loc, state, module_input, src, subspaces)
                    x = torch.where(hit[:, u].view(-1, *([1] * (x.dim() - 1))), new, x)
                changed = True
                continue
            units = gather(x, site, loc)
            mi = gather(module_input, site, loc) if (w.module_input and module_input is not None) else None
            new_units = _apply(w, units, loc, state, mi, source, subspaces)
            if not w.collect:
                x = scatter(x, site, loc, new_units)
                changed = True
        for c in self.captures:
            if c.loc.unit is Unit.T:
                if call in c.calls:
                    state.captured.setdefault(c.key, {})[call] = x[c.rows]
                    if call == max(c.calls):
                        state.pending -= 1
            elif call == 0:  # a module called again in the same forward (shared weights) is read once
                state.captured[c.key] = gather(x[c.rows], site, c.loc)
                state.pending -= 1
        if self.captures and state.stop_when_done and state.pending <= 0:
            raise StopForward
        return x if changed else None

    # forward hook (output side)
    def output_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        raw = _raw(output, self.site)
        x = _get(output, self.site)
        mi = None
        if any(w.module_input for w in self.writes):
            where, k = _input_tensor(args, kwargs, self.site)
            mi = args[k] if where == "args" else kwargs[k]
        new = self._process(x, mi)
        if new is None:
            return None
        return _put(output, self.site, new, raw)

    # forward pre-hook (input side)
    def input_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        where, k = _input_tensor(args, kwargs, self.site)
        container = args[k] if where == "args" else kwargs[k]
        x = _get(container, self.site) if self.site.chunk else container
        new = self._process(x, None)
        if new is None:
            return None
        if self.site.chunk:
            new = _put(container, self.site, new, container)
        if where == "args":
            args = args[:k] + (new,) + args[k + 1 :]
        else:
            kwargs = {**kwargs, k: new}
        return args, kwargs


@contextlib.contextmanager
def run_hooks(
    model: nn.Module,
    plan: Sequence[tuple[Site, list[Write], list[Capture]]],
    state: RunState,
    on_call: Callable[[RunState, tuple, dict], None] | None = None,
) -> Iterator[None]:
    """Register the hooks of one run on ``model``; remove exactly them on exit, also on error."""
    handles = []
    contexts = contextlib.ExitStack()
    try:
        if on_call is not None:

            def top(module: nn.Module, args: tuple, kwargs: dict) -> None:
                state.calls.clear()
                on_call(state, args, kwargs)

            handles.append(model.register_forward_pre_hook(top, with_kwargs=True, prepend=True))
        seen_contexts = set()
        for site, writes, captures in plan:
            if not writes and not captures:
                continue
            if site.context is not None and site.context not in seen_contexts:
                seen_contexts.add(site.context)
                contexts.enter_context(site.context(model))
            module = get_module(model, site.module)
            hook = _SiteHook(site, writes, captures, state)
            if site.side is Side.OUTPUT:
                handles.append(module.register_forward_hook(hook.output_hook, with_kwargs=True))
            else:
                handles.append(module.register_forward_pre_hook(hook.input_hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()
        contexts.close()
