"""Locations: the :class:`Loc` record, and ``unit_locations``/``subspaces`` read into it.

Every shorthand is expanded here, once per call, into per-intervention :class:`Loc` records and
per-example subspace lists (``_plan.py`` calls this while planning a call; the engine reads the
records). Nothing read here is remembered for a later call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from attrs import define, field
from torch import Tensor

from ._errors import BatchSizeError, SubspaceError, UnitLocationError
from ._units import Unit

__all__ = ["Loc", "side_locs", "split_pair", "normalize_subspaces"]


@define(slots=True)
class Loc:
    """Where in a site's tensor: ``None`` indices mean the whole tensor.

    ``index`` is ``[batch, units]`` positions (or timesteps for ``t``); for ``h.pos`` units
    ``heads`` holds ``[batch, heads]`` and ``index`` the positions; for ``h`` units ``heads`` only.
    ``max_index``/``max_head`` are the largest indices, known on the host without a sync.
    """

    unit: Unit
    index: Tensor | None = None
    heads: Tensor | None = None
    max_index: int = -1
    max_head: int = -1
    batch: int = 0
    _cache: dict = field(factory=dict)

    @property
    def whole(self) -> bool:
        return self.index is None and self.heads is None

    def on(self, name: str, device: torch.device, repeat: int) -> Tensor:
        key = (name, device, repeat)
        t = self._cache.get(key)
        if t is None:
            t = getattr(self, name).to(device, non_blocking=True)
            if repeat > 1:
                t = t.repeat_interleave(repeat, dim=0)
            self._cache[key] = t
        return t


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _flat_ints(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(_is_int(v) for v in x)


def _as_list(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x


def split_pair(value: Any) -> tuple[Any, Any]:
    """``sources->base`` values: a tuple (source, base), or one value used for both."""
    value = _as_list(value)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise UnitLocationError(
                f"a (source, base) location pair must have 2 entries, got {len(value)}."
            )
        return value
    if isinstance(value, list) and len(value) == 2 and not _flat_ints(value):
        return value[0], value[1]
    return value, value


def _per_example(entry: Any, batch: int, what: str, i: int) -> list[list[int]]:
    """One intervention's entry -> [batch][units] of non-negative ints."""
    entry = _as_list(entry)
    if _is_int(entry):
        rows = [[entry]] * batch
    elif _flat_ints(entry):
        rows = [list(entry)] * batch
    elif isinstance(entry, (list, tuple)) and entry and all(
        isinstance(r, (list, tuple)) for r in entry
    ):
        rows = [list(r) for r in entry]
        if len(rows) == 1 and batch > 1:
            rows = rows * batch
        if len(rows) != batch:
            raise BatchSizeError(
                f"unit_locations for intervention {i} give {what} for {len(rows)} examples, but "
                f"the base batch has {batch}; give one list per example, or one list for all."
            )
        for r in rows:
            if not r or not all(_is_int(v) for v in r):
                raise UnitLocationError(
                    f"unit_locations for intervention {i}: each example needs a non-empty list of "
                    f"int {what}, got {r!r}. The full form is [intervention][example][unit]."
                )
        lengths = {len(r) for r in rows}
        if len(lengths) > 1:
            raise UnitLocationError(
                f"unit_locations for intervention {i}: every example must have the same number of "
                f"{what} (got {sorted(lengths)}); pad with a repeated index."
            )
    else:
        raise UnitLocationError(
            f"cannot read unit_locations for intervention {i}: {entry!r}. Give an int, a list of "
            "ints (the same for every example), or one list per example."
        )
    for r in rows:
        for v in r:
            if v < 0:
                raise UnitLocationError(
                    f"unit_locations for intervention {i} has negative {what[:-1]} {v}; use "
                    "non-negative indices."
                )
    return rows


def _loc(entry: Any, unit: Unit, batch: int, i: int) -> Loc:
    entry = _as_list(entry)
    if entry is None:
        return Loc(unit=unit, batch=batch)
    if unit is Unit.H_POS:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
            raise UnitLocationError(
                f"unit 'h.pos' locations for intervention {i} must be a pair [heads, positions] "
                f"(each [example][unit]), got {entry!r}."
            )
        heads = _per_example(entry[0], batch, "heads", i)
        pos = _per_example(entry[1], batch, "positions", i)
        return Loc(
            unit=unit,
            index=torch.tensor(pos, dtype=torch.long),
            heads=torch.tensor(heads, dtype=torch.long),
            max_index=max(max(r) for r in pos),
            max_head=max(max(r) for r in heads),
            batch=batch,
        )
    what = "heads" if unit is Unit.H else ("timesteps" if unit is Unit.T else "positions")
    rows = _per_example(entry, batch, what, i)
    t = torch.tensor(rows, dtype=torch.long)
    top = max(max(r) for r in rows)
    if unit is Unit.H:
        return Loc(unit=unit, heads=t, max_head=top, batch=batch)
    return Loc(unit=unit, index=t, max_index=top, batch=batch)


def side_locs(value: Any, units: Sequence[Unit], batch: int) -> list[Loc]:
    """One side (source or base) of ``unit_locations`` -> one Loc per intervention."""
    value = _as_list(value)
    n = len(units)
    if value is None or _is_int(value) or _flat_ints(value):
        return [_loc(value, u, batch, i) for i, u in enumerate(units)]
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise UnitLocationError(
                f"unit_locations has {len(value)} entries but there are {n} interventions; give "
                "one entry per intervention ([intervention][example][unit]), or a shorthand (an "
                "int or a flat list of ints) for all of them."
            )
        return [_loc(v, u, batch, i) for i, (v, u) in enumerate(zip(value, units))]
    raise UnitLocationError(
        f"cannot read unit_locations {value!r}: give an int, a list of ints, a (source, base) "
        "pair, or the full [intervention][example][unit] form."
    )


def normalize_subspaces(
    value: Any,
    n: int,
    batch: int,
    partitions: Sequence[Sequence[tuple[int, int]] | None],
) -> list[Any]:
    """``subspaces`` -> per intervention, per example, a list of feature indices (or None).

    A dict (for all interventions, or as one intervention's entry) is passed to the intervention
    unchanged, for interventions that read their own kind of subspace (as pyvene allows).
    """
    value = _as_list(value)
    per: list[Any]
    if value is None:
        per = [None] * n
    elif isinstance(value, Mapping):
        per = [value] * n
    elif _is_int(value) or _flat_ints(value):
        per = [value] * n
    elif isinstance(value, (list, tuple)):
        if len(value) != n:
            raise SubspaceError(
                f"subspaces has {len(value)} entries but there are {n} interventions; give one "
                "per intervention ([intervention][example][index]), or an int / flat list for all."
            )
        per = list(value)
    else:
        raise SubspaceError(f"cannot read subspaces {value!r}.")
    out: list[Any] = []
    for i, entry in enumerate(per):
        entry = _as_list(entry)
        if entry is None or isinstance(entry, Mapping):
            out.append(entry)
            continue
        if _is_int(entry):
            rows = [[entry]] * batch
        elif _flat_ints(entry):
            rows = [list(entry)] * batch
        elif isinstance(entry, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in entry):
            rows = [list(r) for r in entry]
            if len(rows) == 1 and batch > 1:
                rows = rows * batch
            if len(rows) != batch:
                raise BatchSizeError(
                    f"subspaces for intervention {i} are given for {len(rows)} examples, but the "
                    f"base batch has {batch}."
                )
        else:
            raise SubspaceError(f"cannot read subspaces for intervention {i}: {entry!r}.")
        part = partitions[i]
        if part is not None:
            expanded = []
            for r in rows:
                dims: list[int] = []
                for p in r:
                    if not 0 <= p < len(part):
                        raise SubspaceError(
                            f"subspace {p} of intervention {i} names no partition; "
                            f"subspace_partition has {len(part)} parts (0..{len(part) - 1})."
                        )
                    dims.extend(range(part[p][0], part[p][1]))
                expanded.append(dims)
            rows = expanded
        out.append(rows)
    return out
