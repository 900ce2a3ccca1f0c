"""Interchange in a PCA basis fitted from collected activations (no scikit-learn needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

import vene

from ._common import RecordsInterchangeDim, interchange_mask, need_dim, need_source, rerecord

__all__ = ["PCARotatedSpaceIntervention"]


def _mark_fitted(module: torch.nn.Module, incompatible_keys: Any) -> None:
    module.__dict__["_fitted"] = True


class PCARotatedSpaceIntervention(RecordsInterchangeDim, vene.DistributedRepresentationIntervention):
    """Interchange the first ``interchange_dim`` principal components (or the ``subspaces``).

    Activations are standardised with ``pca_mean`` and ``pca_std`` and written in the principal
    components (``pca_components``, ``[k, embed_dim]``, orthonormal rows, by decreasing
    variance); the chosen components of the source replace those of the base::

        z = (x - pca_mean) / pca_std
        out = base + (((z_source - z_base) @ C.T * mask) @ C) * pca_std

    When ``k = embed_dim`` this is pyvene's "project, swap, project back"; when ``k <
    embed_dim`` the part of the base outside the components is kept instead of dropped.

    Give the basis at construction (``pca_components``, ``pca_mean``, ``pca_std`` tensors or
    arrays, or pyvene's ``pca=`` object with ``components_``), or build the intervention with
    ``embed_dim`` (and optionally ``n_components``) and call :meth:`fit` on activations collected
    at the site. ``n_components`` defaults to the representation's ``low_rank_dimension``. The
    basis lives in buffers, so artifacts restore it.
    """

    pca_components: Tensor
    pca_mean: Tensor
    pca_std: Tensor
    _fitted: bool

    def __init__(
        self,
        pca_components: Any = None,
        pca_mean: Any = None,
        pca_std: Any = None,
        n_components: int | None = None,
        pca: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        who = type(self).__name__
        n = need_dim(
            self.embed_dim,
            "embed_dim",
            who,
            "IntervenableModel passes the site's width (times max_number_of_units); when "
            "building the intervention yourself pass embed_dim=<width>.",
        )
        if pca_components is None and pca is not None:
            pca_components = getattr(pca, "components_", None)
            if pca_components is None:
                raise vene.ConfigError(
                    f"{who} got pca={pca!r}, which has no components_; pass a fitted PCA or "
                    "pca_components=<[k, embed_dim] tensor>."
                )
        if n_components is None:
            # a representation's low_rank_dimension names the number of components
            n_components = kwargs.get("low_rank_dimension")
        dtype = torch.get_default_dtype()
        self._requested = n_components
        if pca_components is not None:
            comps = torch.as_tensor(pca_components, dtype=dtype).detach().clone()
            if comps.dim() != 2 or comps.shape[1] != n or comps.shape[0] > n:
                raise vene.ConfigError(
                    f"{who}: pca_components must have shape [k, {n}] with k <= {n}, got {tuple(comps.shape)}."
                )
            mean = torch.zeros(n, dtype=dtype) if pca_mean is None else pca_mean
            std = torch.ones(n, dtype=dtype) if pca_std is None else pca_std
            mean = torch.as_tensor(mean, dtype=dtype).detach().clone().reshape(-1)
            std = torch.as_tensor(std, dtype=dtype).detach().clone().reshape(-1)
            if mean.shape != (n,) or std.shape != (n,):
                raise vene.ConfigError(
                    f"{who}: pca_mean and pca_std must have {n} entries, got {tuple(mean.shape)} "
                    f"and {tuple(std.shape)}."
                )
            self._fitted = True
        else:
            k = n if n_components is None else need_dim(n_components, "n_components", who, "")
            if k > n:
                raise vene.ConfigError(f"{who}: n_components={k} is more than embed_dim={n}.")
            comps = torch.zeros(k, n, dtype=dtype)
            mean = torch.zeros(n, dtype=dtype)
            std = torch.ones(n, dtype=dtype)
            self._fitted = False
        self.register_buffer("pca_components", comps)
        self.register_buffer("pca_mean", mean)
        self.register_buffer("pca_std", std)
        # The tensors live in the state dict; the record keeps only their size.
        rerecord(
            self,
            drop=("pca_components", "pca_mean", "pca_std", "pca"),
            n_components=int(comps.shape[0]),
        )
        self.register_load_state_dict_post_hook(_mark_fitted)
        self.explained_variance_: Tensor | None = None
        self.explained_variance_ratio_: Tensor | None = None

    @property
    def n_components(self) -> int:
        return int(self.pca_components.shape[0])

    @torch.no_grad()
    def fit(
        self, activations: Tensor | Sequence[Tensor], n_components: int | None = None
    ) -> PCARotatedSpaceIntervention:
        """Fit mean, standard deviation and principal components to ``activations``.

        ``activations`` is ``[N, embed_dim]``, ``[..., embed_dim]``, ``[N, units, width]`` with
        ``units * width = embed_dim`` (units concatenated, as the intervention receives them),
        or a list of such tensors (what a :class:`vene.CollectIntervention` returns). Features
        are standardised (population standard deviation; constant features keep 1), then the
        components are the right singular vectors, each signed so that its largest entry is
        positive. Keeps ``n_components`` (default: the constructor's, else ``min(N,
        embed_dim)``) components. Returns ``self``.
        """
        n = need_dim(self.embed_dim, "embed_dim", type(self).__name__, "")
        who = type(self).__name__
        parts = [activations] if isinstance(activations, Tensor) else list(activations)
        rows = []
        for a in parts:
            a = torch.as_tensor(a).detach()
            if a.shape[-1] == n:
                rows.append(a.reshape(-1, n))
            elif a.dim() >= 2 and a[0].numel() == n:
                rows.append(a.reshape(a.shape[0], n))
            else:
                raise vene.ConfigError(
                    f"{who}.fit got activations of shape {tuple(a.shape)}; expected [..., {n}] or "
                    f"[N, units, width] with units * width = {n}."
                )
        x = torch.cat(rows).to(torch.float64)
        samples = x.shape[0]
        if samples < 2:
            raise vene.ConfigError(f"{who}.fit needs at least 2 activations, got {samples}.")
        k = n_components if n_components is not None else self._requested
        k = min(samples, n) if k is None else need_dim(k, "n_components", who, "")
        if k > min(samples, n):
            raise vene.ConfigError(
                f"{who}.fit: {k} components need at least {k} activations of width >= {k}; got "
                f"{samples} of width {n}."
            )
        mean = x.mean(0)
        std = x.std(0, correction=0)
        # constant features: dividing by a rounding-error deviation would only amplify noise
        std = torch.where(std > 1e-12 * mean.abs().clamp(min=1.0), std, torch.ones_like(std))
        _, s, vh = torch.linalg.svd((x - mean) / std, full_matrices=False)
        largest = vh.abs().argmax(dim=1)
        vh = vh * torch.sign(vh[torch.arange(vh.shape[0]), largest])[:, None]
        like = self.pca_mean
        self.pca_components = vh[:k].to(like.dtype).to(like.device).contiguous()
        self.pca_mean = mean.to(like.dtype).to(like.device)
        self.pca_std = std.to(like.dtype).to(like.device)
        variance = s**2 / (samples - 1)
        self.explained_variance_ = variance[:k].to(like.dtype)
        self.explained_variance_ratio_ = (variance[:k] / variance.sum()).to(like.dtype)
        rerecord(self, n_components=k)
        self._fitted = True
        return self

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor:
        who = type(self).__name__
        if not self._fitted:
            raise vene.ConfigError(
                f"{who} has no basis yet: call .fit(activations) on it (e.g. "
                "model.interventions[key].fit(collected)), or build it with pca_components."
            )
        source = need_source(source, who)
        c = self.pca_components
        x = base.to(c.dtype)
        s = source.to(c.dtype)
        diff = ((s - self.pca_mean) / self.pca_std - (x - self.pca_mean) / self.pca_std) @ c.T
        mask = interchange_mask(subspaces, self.interchange_dim, c.shape[0], diff)
        if mask is not None:
            diff = diff * mask
        return (x + (diff @ c) * self.pca_std).to(base.dtype)
