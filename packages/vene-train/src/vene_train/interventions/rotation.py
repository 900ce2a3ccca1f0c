"""Distributed alignment search (DAS): interchange in a learned orthonormal basis.

Every intervention here keeps a basis ``R`` with orthonormal columns (``rotate_layer.weight``,
``[embed_dim, k]``), kept orthonormal through optimizer steps by a parametrization: torch's
``parametrizations.orthogonal`` for a square rotation, a Householder product for ``k <
embed_dim`` (see ``_common.orthogonal_basis``). Base and source are written in the basis (``x @ R``), coordinates of the
source replace (or are mixed into) those of the base, and the change is mapped back::

    out = base + ((source @ R - base @ R) * mask) @ R.T

With a full rotation (``k = embed_dim``) this is pyvene's "rotate, swap, rotate back"; with
``k < embed_dim`` it is ``base + (source - base) R Rᵀ`` restricted to the chosen coordinates, and
the part of the base outside the span of ``R`` is kept exactly. ``mask`` is:

* :class:`RotatedSpaceIntervention`, :class:`LowRankRotatedSpaceIntervention`: 1 on the
  coordinates named by ``subspaces`` (per example), else on the first ``interchange_dim``
  (default: all);
* :class:`BoundlessRotatedSpaceIntervention`: a learned boundary, smoothed by a sigmoid whose
  temperature is annealed during training;
* :class:`SigmoidMaskRotatedSpaceIntervention`: a learned per-coordinate sigmoid mask.

For the learned masks, ``subspaces`` (when given) restricts the mask to the named coordinates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

import vene

from ._common import (
    RecordsInterchangeDim,
    Tempered,
    interchange_mask,
    need_dim,
    need_source,
    orthogonal_basis,
    restrict,
)

__all__ = [
    "RotatedSpaceIntervention",
    "LowRankRotatedSpaceIntervention",
    "BoundlessRotatedSpaceIntervention",
    "SigmoidMaskRotatedSpaceIntervention",
]

_EMBED_HINT = (
    "IntervenableModel passes it from the site's width (times max_number_of_units); when "
    "building the intervention yourself pass embed_dim=<width>."
)


class _Rotated(RecordsInterchangeDim, vene.TrainableIntervention, vene.DistributedRepresentationIntervention):
    """An orthonormal basis ``rotate_layer.weight`` of ``[embed_dim, k]`` and the mixing step."""

    rotate_layer: nn.Linear

    def _init_basis(self, k: int | None = None) -> None:
        n = need_dim(self.embed_dim, "embed_dim", type(self).__name__, _EMBED_HINT)
        self.rotate_layer = orthogonal_basis(n, k)

    @property
    def rotation(self) -> Tensor:
        """The basis ``R`` (``[embed_dim, k]``, orthonormal columns), recomputed on each access."""
        return self.rotate_layer.weight

    def _mix(self, base: Tensor, source: Tensor, mask: Any) -> Tensor:
        """``base + ((source @ R - base @ R) * mask) @ R.T``; ``mask`` a callable of the diff."""
        r = self.rotate_layer.weight  # one evaluation of the parametrization per call
        x = base.to(r.dtype)
        diff = source.to(r.dtype) @ r - x @ r
        m = mask(diff)
        if m is not None:
            diff = diff * m
        return (x + diff @ r.T).to(base.dtype)


class RotatedSpaceIntervention(_Rotated):
    """DAS (Geiger et al., 2023): interchange the first ``interchange_dim`` coordinates (or the
    ``subspaces``) of base and source in a learned rotation of size ``embed_dim``.

    ``rotate_layer`` is a bias-free ``nn.Linear`` under the orthogonal parametrization; its
    ``weight`` is the rotation ``R`` (coordinates are ``x @ R``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_basis()

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        source = need_source(source, type(self).__name__)
        k = self.rotate_layer.weight.shape[1]
        return self._mix(base, source, lambda d: interchange_mask(subspaces, self.interchange_dim, k, d))


class LowRankRotatedSpaceIntervention(_Rotated):
    """DAS in a ``low_rank_dimension``-dimensional subspace: ``base + (source − base)·R·Rᵀ``.

    ``R`` (``rotate_layer.weight``, ``[embed_dim, low_rank_dimension]``) has orthonormal columns;
    ``subspaces`` (or ``interchange_dim``) select columns of ``R``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        k = need_dim(
            kwargs.get("low_rank_dimension"),
            "low_rank_dimension",
            type(self).__name__,
            "set low_rank_dimension on the representation (the number of directions to learn).",
        )
        self._init_basis(k)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        source = need_source(source, type(self).__name__)
        k = self.rotate_layer.weight.shape[1]
        return self._mix(base, source, lambda d: interchange_mask(subspaces, self.interchange_dim, k, d))


class BoundlessRotatedSpaceIntervention(Tempered, _Rotated):
    """Boundless DAS (Wu et al., 2023): a rotation plus a learned boundary.

    Coordinate ``i`` of the rotated space is taken from the source with weight
    ``sigmoid((i + ½)/T) · sigmoid((b·n − i − ½)/T)``, ``b = clamp(intervention_boundaries, 1e-3,
    1)`` the learned fraction of the ``n`` coordinates and ``T`` the temperature (anneal it
    towards 0 with :meth:`set_temperature`; the mask then tends to 1 on the coordinates
    ``i < b·n − ½`` and 0 elsewhere). pyvene measures ``i`` at the start of each coordinate,
    which leaves coordinate 0 half-mixed at every temperature; vene measures it at the centre.
    """

    intervention_population: Tensor

    def __init__(self, init_boundary: float = 0.5, init_temperature: float = 50.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_basis()
        n = self.rotate_layer.weight.shape[1]
        self.intervention_boundaries = nn.Parameter(torch.tensor([float(init_boundary)]))
        self.register_buffer("temperature", torch.tensor(float(init_temperature)))
        self.register_buffer("intervention_population", torch.arange(n))

    def get_boundary_parameters(self) -> nn.Parameter:
        return self.intervention_boundaries

    @torch.no_grad()
    def set_intervention_boundaries(self, intervention_boundaries: float) -> None:
        """Set the boundary (a fraction of ``embed_dim``) in place, keeping the parameter."""
        self.intervention_boundaries.fill_(float(intervention_boundaries))

    def boundary_mask(self) -> Tensor:
        """The ``[embed_dim]`` weights with which each rotated coordinate takes the source."""
        b = self.intervention_boundaries.clamp(1e-3, 1.0)
        t = self.temperature.to(b.dtype)
        pos = self.intervention_population.to(b.dtype) + 0.5
        n = self.intervention_population.shape[0]
        return torch.sigmoid(pos / t) * torch.sigmoid((b * n - pos) / t)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        source = need_source(source, type(self).__name__)
        return self._mix(base, source, lambda d: restrict(self.boundary_mask().to(d.dtype), subspaces, d))


class SigmoidMaskRotatedSpaceIntervention(Tempered, _Rotated):
    """A rotation plus a learned per-coordinate mask ``sigmoid(masks / T)``.

    ``masks`` starts at ``init_mask`` (100, as pyvene) and the temperature ``T`` at
    ``init_temperature`` (50).
    """

    def __init__(self, init_mask: float = 100.0, init_temperature: float = 50.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_basis()
        n = self.rotate_layer.weight.shape[1]
        self.masks = nn.Parameter(torch.full((n,), float(init_mask)))
        self.register_buffer("temperature", torch.tensor(float(init_temperature)))

    def mask(self) -> Tensor:
        """The ``[embed_dim]`` weights with which each rotated coordinate takes the source."""
        return torch.sigmoid(self.masks / self.temperature)

    def get_boundary_parameters(self) -> nn.Parameter:
        """The learned mask logits (pyvene's name for them)."""
        return self.masks

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        source = need_source(source, type(self).__name__)
        return self._mix(base, source, lambda d: restrict(self.mask().to(d.dtype), subspaces, d))
