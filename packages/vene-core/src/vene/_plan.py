"""Call planning: one call's arguments read into an explicit plan, before anything runs.

The first step of every call (see ``_model.py`` for the whole pipeline). The sources, the
``unit_locations``, the ``subspaces`` and the constant ``source_representations`` of a call, in
all their shorthand forms, become one :class:`CallPlan`: per representation where it reads its
source and writes the base, which dimensions it touches, and where its source comes from. Nothing
read here is remembered for a later call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from attrs import frozen
from torch import Tensor

from ._config import RepresentationConfig
from ._errors import BatchSizeError, ConfigError, UnitLocationError
from ._interventions import Intervention, SourcelessIntervention
from ._locations import Loc, normalize_subspaces, side_locs, split_pair
from ._sites import Site
from ._units import Unit

__all__ = ["Slot", "CallPlan", "SourceKind", "plan_call", "batch_size"]

SourceKind = Literal["constant", "none", "skip", "run"]
"""Where a representation's source comes from in a call: a constant, nothing (sourceless or no
sources given), nowhere because its group's source is None (the intervention is skipped), or a
source run."""


@frozen
class Slot:
    """One representation, resolved once at construction."""

    index: int
    key: str
    rep: RepresentationConfig
    site: Site
    unit: Unit
    group: int


@frozen
class CallPlan:
    """Everything one call needs, per slot (indexed by ``Slot.index``)."""

    batch: int
    sources: list[Any] | None
    locations: list[tuple[Loc, Loc]]  # (source location, base location)
    subspaces: list[Any]  # per slot: per-example index lists, None, or a dict passed through
    constants: list[Any]
    kinds: list[SourceKind]
    additional: Mapping[str, Any]


def batch_size(inputs: Any, what: str) -> int:
    """The batch size of one input form (a tensor, a dict or a sequence holding tensors)."""
    if isinstance(inputs, Tensor):
        return inputs.shape[0]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    for v in values:
        if isinstance(v, Tensor) and v.dim() > 0:
            return v.shape[0]
    raise BatchSizeError(
        f"cannot tell the batch size of the {what}: it holds no tensor with a batch dimension. "
        "Pass the model's inputs as a dict of tensors, e.g. {'input_ids': ids}."
    )


def plan_call(
    slots: Sequence[Slot],
    interventions: Mapping[str, Intervention],
    mode: str,
    n_groups: int,
    base: Any,
    sources: Any,
    unit_locations: Any,
    source_representations: Any,
    subspaces: Any,
    additional: Mapping[str, Any] | None,
) -> CallPlan:
    """Read one call's arguments into a :class:`CallPlan` (raising on any malformed one)."""
    batch = batch_size(base, "base")
    srcs = _sources(sources, batch, n_groups)
    locs = (
        _serial_locations(slots, n_groups, unit_locations, batch)
        if mode == "serial"
        else _parallel_locations(slots, unit_locations, batch)
    )
    partitions = [s.rep.subspace_partition for s in slots]
    subs = normalize_subspaces(subspaces, len(slots), batch, partitions)
    consts = _constants(slots, source_representations)
    kinds = [_source_kind(interventions[s.key], consts[s.index], srcs, s.group) for s in slots]
    return CallPlan(
        batch=batch,
        sources=srcs,
        locations=locs,
        subspaces=subs,
        constants=consts,
        kinds=kinds,
        additional=dict(additional or {}),
    )


def _sources(sources: Any, batch: int, g: int) -> list[Any] | None:
    if sources is None:
        return None
    if isinstance(sources, (Mapping, Tensor)):
        sources = [sources]
    sources = list(sources)
    if len(sources) == 1 and g > 1:
        sources = sources * g
    if len(sources) != g:
        raise ConfigError(
            f"got {len(sources)} sources for {g} intervention groups; give one source per "
            "group (representations that share a group_key form one group), a single source "
            "for all of them, or None to skip a group."
        )
    for j, s in enumerate(sources):
        if s is not None and batch_size(s, f"source {j}") != batch:
            raise BatchSizeError(
                f"source {j} has batch size {batch_size(s, f'source {j}')} but the base has "
                f"{batch}; every source must pair one example with each base example."
            )
    return sources


def _constants(slots: Sequence[Slot], source_representations: Any) -> list[Any]:
    n = len(slots)
    if source_representations is None:
        return [None] * n
    if isinstance(source_representations, Tensor):
        return [source_representations] * n
    if isinstance(source_representations, Mapping):
        keys = {s.key: s.index for s in slots}
        out = [None] * n
        for k, v in source_representations.items():
            if isinstance(k, int) and 0 <= k < n:
                out[k] = v
            elif k in keys:
                out[keys[k]] = v
            else:
                raise ConfigError(
                    f"source_representations has key {k!r}, which names no intervention; keys "
                    f"are {sorted(keys)} (or their indices)."
                )
        return out
    seq = list(source_representations)
    if len(seq) != n:
        raise ConfigError(
            f"source_representations has {len(seq)} entries for {n} interventions; give one "
            "per intervention, a dict by key, or one tensor for all."
        )
    return seq


def _parallel_locations(slots: Sequence[Slot], unit_locations: Any, batch: int) -> list[tuple[Loc, Loc]]:
    """Per slot: (source location, base location)."""
    units = [s.unit for s in slots]
    if isinstance(unit_locations, Mapping):
        extra = set(unit_locations) - {"sources->base", "base"}
        if extra:
            raise UnitLocationError(
                f"unit_locations has key(s) {sorted(map(str, extra))}; in parallel mode the keys "
                "are 'sources->base' (a (source, base) pair) and 'base'."
            )
        if "sources->base" in unit_locations:
            src, base = split_pair(unit_locations["sources->base"])
        else:
            src = base = unit_locations.get("base")
    elif isinstance(unit_locations, tuple):
        src, base = split_pair(unit_locations)
    else:
        src = base = unit_locations
    base_locs = side_locs(base, units, batch)
    src_locs = side_locs(src, units, batch) if src is not base else base_locs
    return list(zip(src_locs, base_locs))


def _serial_locations(
    slots: Sequence[Slot], g: int, unit_locations: Any, batch: int
) -> list[tuple[Loc, Loc]]:
    by_group: dict[int, list[Slot]] = {}
    for s in slots:
        by_group.setdefault(s.group, []).append(s)
    out: dict[int, tuple[Loc, Loc]] = {}
    if isinstance(unit_locations, Mapping):
        names = [f"source_{k}->source_{k + 1}" for k in range(g - 1)] + [f"source_{g - 1}->base"]
        extra = set(unit_locations) - set(names)
        if extra:
            raise UnitLocationError(
                f"unit_locations has key(s) {sorted(map(str, extra))}; in serial mode with {g} "
                f"groups the keys are {names}."
            )
    for k in range(g):
        group = by_group[k]
        if isinstance(unit_locations, Mapping):
            name = f"source_{k}->source_{k + 1}" if k < g - 1 else f"source_{g - 1}->base"
            value = unit_locations.get(name)
        else:
            value = unit_locations
        src, tgt = split_pair(value) if value is not None else (None, None)
        units = [s.unit for s in group]
        for s, a, b in zip(group, side_locs(src, units, batch), side_locs(tgt, units, batch)):
            out[s.index] = (a, b)
    return [out[i] for i in range(len(slots))]


def _source_kind(iv: Intervention, constant: Any, sources: list[Any] | None, group: int) -> SourceKind:
    if constant is not None or getattr(iv, "source_representation", None) is not None:
        return "constant"
    if isinstance(iv, SourcelessIntervention) or sources is None:
        return "none"
    if sources[group] is None:
        # pyvene applies constant-source interventions (and functions) without a source
        return "skip" if getattr(iv, "needs_source", True) else "none"
    return "run"
