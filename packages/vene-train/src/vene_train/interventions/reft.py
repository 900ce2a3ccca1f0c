"""Representation finetuning (ReFT; Wu et al., 2024): learned edits of the base, no source run.

The formulas are pyreft's, with ``R`` the ``[low_rank_dimension, embed_dim]`` matrix whose rows
span the edited subspace (stored transposed as ``rotate_layer.weight``, ``[embed_dim, r]``, with
orthonormal columns kept by a Householder parametrization that weight decay cannot break):

* :class:`LoreftIntervention`: ``h + Rᵀ(act(Wh + b) − Rh)``, R orthonormal rows;
* :class:`NoreftIntervention`: ``h + Wpᵀ(act(Wh + b) − Wp h)``, no orthogonality;
* :class:`DireftIntervention`: ``h + Rᵀ act(Wh + b)``, R orthonormal rows;
* :class:`ConsreftIntervention`: ``h + Rᵀ(b − Rh)`` with a learned constant ``b``.

Each acts on every position it is given, separately (``keep_last_dim``: ``embed_dim`` is the
site's width, whatever ``max_number_of_units``). ``act_fn`` names an activation as in
transformers' ``ACT2FN`` (default: none); ``dropout`` applies to the output, as pyreft does;
``dtype`` sets the dtype of ``W``/``b`` (and ``Wp``). ``subspaces``, when given, picks which of
the ``r`` directions each example edits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

import vene

from ._common import (
    activation,
    dtype_name,
    interchange_mask,
    need_dim,
    orthogonal_basis,
    rerecord,
    resolve_dtype,
)

__all__ = [
    "LoreftIntervention",
    "NoreftIntervention",
    "DireftIntervention",
    "ConsreftIntervention",
]


class _Reft(
    vene.SourcelessIntervention,
    vene.TrainableIntervention,
    vene.DistributedRepresentationIntervention,
):
    """Common sizes and options of the ReFT family."""

    keep_last_dim = True

    def _sizes(self, kwargs: dict[str, Any]) -> tuple[int, int]:
        who = type(self).__name__
        n = need_dim(
            self.embed_dim,
            "embed_dim",
            who,
            "IntervenableModel passes the site's width; when building the intervention yourself "
            "pass embed_dim=<hidden size>.",
        )
        r = need_dim(
            kwargs.get("low_rank_dimension"),
            "low_rank_dimension",
            who,
            "set low_rank_dimension on the representation (the rank of the edit).",
        )
        if r > n:
            raise vene.ConfigError(
                f"{who}: low_rank_dimension={r} is more than embed_dim={n}; the edit's rank must "
                "fit in the hidden size."
            )
        return n, r

    def _options(self, dropout: float, act_fn: str | None, dtype: Any) -> torch.dtype | None:
        self.act_fn_name = act_fn
        self.act_fn = activation(act_fn)
        self.dropout = nn.Dropout(float(dropout))
        if dtype is not None:
            rerecord(self, dtype=dtype_name(dtype))  # config.json holds the name, not the object
        return resolve_dtype(dtype)

    def _learned(self, layer: nn.Linear, base: Tensor, like: Tensor) -> Tensor:
        """``act(W h + b)`` computed in the layer's dtype, returned in ``like``'s."""
        return self.act_fn(layer(base.to(layer.weight.dtype))).to(like.dtype)

    def extra_repr(self) -> str:
        act = f", act_fn={self.act_fn_name}" if getattr(self, "act_fn_name", None) else ""
        return f"{super().extra_repr()}{act}"


def _masked(delta: Tensor, subspaces: Any) -> Tensor:
    mask = interchange_mask(subspaces, None, delta.shape[-1], delta)
    return delta if mask is None else delta * mask


class LoreftIntervention(_Reft):
    """LoReFT: ``h + Rᵀ(act(Wh + b) − Rh)``; R (``rotate_layer.weight.T``) has orthonormal rows,
    ``W, b`` are ``learned_source``."""

    def __init__(
        self, dropout: float = 0.0, act_fn: str | None = None, dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        n, r = self._sizes(kwargs)
        dt = self._options(dropout, act_fn, dtype)
        self.rotate_layer = orthogonal_basis(n, r)
        self.learned_source = nn.Linear(n, r).to(dtype=dt)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        w = self.rotate_layer.weight  # [n, r] = Rᵀ
        h = base.to(w.dtype)
        delta = self._learned(self.learned_source, base, w) - h @ w
        return self.dropout((h + _masked(delta, subspaces) @ w.T).to(base.dtype))


class NoreftIntervention(_Reft):
    """NoReFT: ``h + Wpᵀ(act(Wh + b) − Wp h)``; ``Wp`` (``proj_layer``, with a bias when
    ``add_bias``) is not constrained."""

    def __init__(
        self,
        dropout: float = 0.0,
        act_fn: str | None = None,
        add_bias: bool = False,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        n, r = self._sizes(kwargs)
        dt = self._options(dropout, act_fn, dtype)
        self.proj_layer = nn.Linear(n, r, bias=bool(add_bias)).to(dtype=dt)
        self.learned_source = nn.Linear(n, r).to(dtype=dt)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        wp = self.proj_layer.weight  # [r, n]
        h = base.to(wp.dtype)
        delta = self._learned(self.learned_source, base, wp) - self.proj_layer(h)
        return self.dropout((h + _masked(delta, subspaces) @ wp).to(base.dtype))


class DireftIntervention(_Reft):
    """DiReFT: ``h + Rᵀ act(Wh + b)``; R (``rotate_layer.weight.T``) has orthonormal rows."""

    def __init__(
        self, dropout: float = 0.0, act_fn: str | None = None, dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        n, r = self._sizes(kwargs)
        dt = self._options(dropout, act_fn, dtype)
        self.rotate_layer = orthogonal_basis(n, r)
        self.learned_source = nn.Linear(n, r).to(dtype=dt)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        w = self.rotate_layer.weight
        h = base.to(w.dtype)
        delta = self._learned(self.learned_source, base, w)
        return self.dropout((h + _masked(delta, subspaces) @ w.T).to(base.dtype))


class ConsreftIntervention(_Reft):
    """ConsReFT: ``h + Rᵀ(b − Rh)`` with a learned constant ``b`` (``learned_source``,
    ``[low_rank_dimension]``): the subspace is set to ``b``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        n, r = self._sizes(kwargs)
        self.act_fn_name = None
        self.rotate_layer = orthogonal_basis(n, r)
        self.learned_source = nn.Parameter(torch.rand(r))

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        w = self.rotate_layer.weight
        h = base.to(w.dtype)
        delta = self.learned_source.to(w.dtype) - h @ w
        return (h + _masked(delta, subspaces) @ w.T).to(base.dtype)
