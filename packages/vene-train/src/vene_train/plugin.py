"""vene-train's entry point: trainable interventions, trainers and the causal model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vene import hookimpl


@hookimpl
def vene_intervention_types() -> Sequence[type]:
    from .interventions import TRAINABLE_INTERVENTIONS

    return TRAINABLE_INTERVENTIONS


@hookimpl
def vene_trainers() -> Sequence[type]:
    from .trainers import TRAINERS

    return TRAINERS


@hookimpl
def vene_public_names() -> Mapping[str, Any]:
    from vene.plugins import provided_names

    from . import causal

    return {name: getattr(causal, name) for name in provided_names("vene-train", "public_names")}
