"""The source passes of a call: run the sources a plan needs, and make the base run's writes.

The step after planning (see ``_model.py`` for the whole pipeline). In parallel mode each
distinct source is run once, all of them batched into one forward where their shapes allow, and
each run stops right after the last site it feeds. In serial mode source ``k`` is run with group
``k - 1``'s interventions applied and read by group ``k``; the last group writes into the base.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._engine import Capture, RunState, StopForward, Write, run_hooks
from ._errors import UnitLocationError, VeneError
from ._interventions import CollectIntervention, Intervention
from ._locations import Loc
from ._plan import CallPlan, Slot, batch_size
from ._sites import Site
from ._units import Unit

__all__ = ["base_writes", "count_call"]

SitePlan = dict[Site, tuple[list[Write], list[Capture]]]
Caller = Callable[[Any], Any]


def count_call(state: RunState, args: tuple, kwargs: dict) -> None:
    """Before each forward of a plain call: count it (so ``t`` units see their timesteps)."""
    state.step += 1


def base_writes(
    model: nn.Module,
    call: Caller,
    slots: Sequence[Slot],
    interventions: Mapping[str, Intervention],
    mode: str,
    n_groups: int,
    as_adaptor: bool,
    plan: CallPlan,
    state: RunState,
) -> dict[int, Write]:
    """Run the sources ``plan`` needs; return the base run's writes by slot index."""
    kinds, srcs, locs = plan.kinds, plan.sources, plan.locations

    def write_for(s: Slot, source: Any) -> Write:
        iv = interventions[s.key]
        return Write(
            key=s.key,
            intervention=iv,
            loc=locs[s.index][1],
            source=source,
            subspaces=plan.subspaces[s.index],
            kwargs=plan.additional,
            collect=isinstance(iv, CollectIntervention),
            module_input=bool(getattr(iv, "needs_module_input", False) or as_adaptor),
            adaptor=as_adaptor,
        )

    def source_of(s: Slot) -> Any:
        kind = kinds[s.index]
        if kind == "constant":
            c = plan.constants[s.index]
            return c if c is not None else interventions[s.key].source_representation
        if kind == "none":
            return None
        return _captured(s, locs[s.index][0], state)

    if mode == "parallel" or srcs is None:
        # without sources there is nothing to chain: every intervention acts on the base
        readers = [s for s in slots if kinds[s.index] == "run"]
        _run_sources(model, call, readers, srcs, locs, state)
        return {s.index: write_for(s, source_of(s)) for s in slots if kinds[s.index] != "skip"}

    # serial: run k (source k) is intervened by group k - 1 and read by group k; the last
    # group writes into the base. A run is only needed for what its readers capture.
    previous: dict[int, Write] = {}
    for k in range(n_groups):
        readers = [s for s in slots if s.group == k and kinds[s.index] == "run"]
        if srcs[k] is not None and readers:
            run_state = RunState(stop_when_done=True, pending=len(readers))
            site_plan: SitePlan = {}
            for s in slots:
                if s.index in previous:
                    site_plan.setdefault(s.site, ([], []))[0].append(previous[s.index])
                if s in readers:
                    loc = locs[s.index][0]
                    capture = Capture(key=s.key, loc=loc, calls=_t_calls(loc))
                    site_plan.setdefault(s.site, ([], []))[1].append(capture)
            _read_run(model, call, srcs[k], site_plan, readers, run_state, state)
        previous = {
            s.index: write_for(s, source_of(s)) for s in slots if s.group == k and kinds[s.index] != "skip"
        }
    return previous


def _concat(inputs: Sequence[Any]) -> Any | None:
    """One batched input for several source inputs of the same structure, or None."""
    first = inputs[0]
    if not all(isinstance(i, Mapping) for i in inputs):
        if all(isinstance(i, Tensor) for i in inputs) and len({i.shape[1:] for i in inputs}) == 1:
            return torch.cat(list(inputs), 0)
        return None
    if any(set(i) != set(first) for i in inputs):
        return None
    out = {}
    for k, v in first.items():
        others = [i[k] for i in inputs]
        if isinstance(v, Tensor):
            if not all(isinstance(o, Tensor) and o.shape == v.shape for o in others):
                return None
            out[k] = torch.cat(others, 0) if v.dim() > 0 else v
        else:
            if any(o is not v and o != v for o in others):
                return None
            out[k] = v
    return out


def _t_calls(loc: Loc) -> tuple[int, ...]:
    if loc.unit is not Unit.T:
        return ()
    if loc.index is None:
        raise UnitLocationError("unit 't' needs explicit timesteps in unit_locations.")
    return tuple(sorted(set(loc.index.flatten().tolist())))


def _run_sources(
    model: nn.Module,
    call: Caller,
    readers: Sequence[Slot],
    srcs: list[Any] | None,
    locs: list[tuple[Loc, Loc]],
    state: RunState,
) -> None:
    """Run each distinct source once, batched into one forward where shapes allow."""
    if not readers or srcs is None:
        return
    distinct: list[Any] = []
    for s in readers:
        inp = srcs[s.group]
        if not any(inp is d for d in distinct):
            distinct.append(inp)
    merged = _concat(distinct) if len(distinct) > 1 else distinct[0]
    batch = batch_size(distinct[0], "source")
    runs: list[tuple[Any, dict[int, slice]]] = []
    if merged is not None:
        runs.append((merged, {id(d): slice(j * batch, (j + 1) * batch) for j, d in enumerate(distinct)}))
    else:
        runs.extend((d, {id(d): slice(None)}) for d in distinct)
    for inputs, rows in runs:
        run_state = RunState(stop_when_done=True)
        site_plan: SitePlan = {}
        mine = [s for s in readers if id(srcs[s.group]) in rows]
        for s in mine:
            loc = locs[s.index][0]
            site_plan.setdefault(s.site, ([], []))[1].append(
                Capture(key=s.key, loc=loc, rows=rows[id(srcs[s.group])], calls=_t_calls(loc))
            )
        run_state.pending = len(mine)
        _read_run(model, call, inputs, site_plan, mine, run_state, state)


def _read_run(
    model: nn.Module,
    call: Caller,
    inputs: Any,
    site_plan: SitePlan,
    readers: Sequence[Slot],
    run_state: RunState,
    state: RunState,
) -> None:
    """One source run: hooks on, forward until the last capture, every site reached."""
    with run_hooks(model, [(a, w, c) for a, (w, c) in site_plan.items()], run_state, count_call):
        try:
            call(inputs)
        except StopForward:
            pass
    if run_state.pending > 0:
        missing = [s.key for s in readers if s.key not in run_state.captured]
        raise VeneError(
            f"the source run never reached the site(s) {missing or 'of some timesteps'}; the "
            "module is not called by this model's forward (or not that many times)."
        )
    state.captured.update(run_state.captured)


def _captured(slot: Slot, loc: Loc, state: RunState) -> Tensor:
    got = state.captured[slot.key]
    if slot.unit is not Unit.T:
        return got
    calls = sorted(got)
    stacked = torch.stack([got[c] for c in calls], dim=1)  # [B, C, ...]
    where = {c: j for j, c in enumerate(calls)}
    assert loc.index is not None  # t units always name their timesteps (checked in _t_calls)
    idx = torch.tensor([[where[t] for t in row] for row in loc.index.tolist()], device=stacked.device)
    shape = idx.shape + (1,) * (stacked.dim() - 2)
    return stacked.gather(1, idx.view(shape).expand(*idx.shape, *stacked.shape[2:]))
