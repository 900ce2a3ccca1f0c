"""The base pass of a call: the writes grouped by site, and what the call returns.

The step after the source passes (see ``_model.py`` for the whole pipeline): the base run's
writes, grouped into one hook per site in representation order, are handed to the engine's
``run_hooks`` (which removes them again, also on error); the collected activations and latents
of the run become the call's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import define
from torch import Tensor

from ._engine import Capture, RunState, Write
from ._interventions import CollectIntervention, Intervention
from ._plan import Slot
from ._sites import Site

__all__ = ["IntervenableModelOutput", "site_plan", "call_result"]


@define
class IntervenableModelOutput:
    """What ``forward(..., return_dict=True)`` returns."""

    original_outputs: Any = None
    intervened_outputs: Any = None
    collected_activations: list[Tensor] | None = None
    latents: dict[str, list[Any]] | None = None


def site_plan(
    slots: Sequence[Slot], writes: Mapping[int, Iterable[Write]]
) -> list[tuple[Site, list[Write], list[Capture]]]:
    """Group each slot's writes by site, in representation order (one hook per site)."""
    plan: dict[Site, list[Write]] = {}
    for s in slots:
        for w in writes.get(s.index, ()):
            plan.setdefault(s.site, []).append(w)
    return [(site, w, []) for site, w in plan.items()]


def call_result(
    slots: Sequence[Slot],
    interventions: Mapping[str, Intervention],
    original: Any,
    intervened: Any,
    state: RunState,
    return_dict: bool | None,
) -> Any:
    """``(original, intervened)``, ``((original, collected), intervened)`` or the output record."""
    has_collect = any(isinstance(interventions[s.key], CollectIntervention) for s in slots)
    collected: list[Any] | None = None
    if has_collect:
        collected = []
        for s in slots:
            collected.extend(state.collected.get(s.key, []))
    if return_dict:
        return IntervenableModelOutput(
            original_outputs=original,
            intervened_outputs=intervened,
            collected_activations=collected,
            latents=dict(state.latents) or None,
        )
    if has_collect:
        return (original, collected), intervened
    return original, intervened
