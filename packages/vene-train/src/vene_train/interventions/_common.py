"""Shared pieces of the trainable interventions: argument checks, masks, orthogonal bases."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal

import vene
from vene.sites import nearest

__all__ = [
    "ACTIVATIONS",
    "RecordsInterchangeDim",
    "Tempered",
    "activation",
    "dtype_name",
    "interchange_mask",
    "need_dim",
    "need_source",
    "orthogonal_basis",
    "rerecord",
    "resolve_dtype",
    "restrict",
]


def need_dim(value: Any, name: str, who: str, hint: str) -> int:
    """A positive int constructor argument, or a ConfigError that says where it comes from."""
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise vene.ConfigError(f"{who} needs a positive int {name}, got {value!r}; {hint}")
    return int(value)


def need_source(source: Tensor | None, who: str) -> Tensor:
    if source is None:
        raise vene.ConfigError(
            f"{who} needs a source: pass `sources` (one input per intervention group), or a "
            "constant through `source_representations` / the representation's "
            "`source_representation`."
        )
    return source


class _Householder(nn.Module):
    """Orthonormal columns for a tall ``[n, k]`` weight (``k < n``): ``base @ H_1 ⋯ H_k [:, :k]``.

    ``H_i = I − τ_i v_i v_iᵀ`` with ``v_i = e_i + (column i of X below the diagonal)`` and
    ``τ_i = 2 / ‖v_i‖²`` (a reflection), ``X`` the trained tensor; ``base`` is a fixed
    ``[n, n]`` orthogonal buffer set from the initial weight. This is the map of
    ``torch.nn.utils.parametrizations.orthogonal(..., "householder")`` except that torch reads
    each column's sign from the *diagonal* of ``X`` (``X.diagonal().int()``), so weight decay,
    which shrinks that diagonal below 1 in magnitude, zeroes columns; here the diagonal is unused
    and the signs live in ``base``. A square weight uses torch's matrix-exponential map instead,
    which weight decay only pulls towards ``base``.
    """

    base: Tensor

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("base", torch.eye(n))

    def forward(self, x: Tensor) -> Tensor:
        a = x.tril(-1)
        tau = 2.0 / (1.0 + (a * a).sum(dim=-2))
        return self.base @ torch.linalg.householder_product(a, tau)

    @torch.no_grad()
    def right_inverse(self, q: Tensor) -> Tensor:
        n, k = q.shape
        # complete q to an orthogonal n x n basis whose first k columns are q itself
        filled = torch.cat([q, torch.randn(n, n - k, dtype=q.dtype, device=q.device)], dim=1)
        full, r = torch.linalg.qr(filled)
        signs = torch.where(r.diagonal() < 0, -1.0, 1.0).to(full.dtype)
        self.base = full * signs
        return torch.zeros_like(q)


def orthogonal_basis(n: int, k: int | None = None) -> nn.Linear:
    """A bias-free ``nn.Linear`` whose ``weight`` (``[n, k]``) has orthonormal columns.

    The weight is the basis ``R``: ``x @ R`` gives the coordinates of ``x`` in the basis and
    ``coords @ R.T`` maps them back. A parametrization keeps it orthonormal through optimizer
    steps: ``torch.nn.utils.parametrizations.orthogonal`` (matrix exponential) for a square
    rotation, a Householder product (:class:`_Householder`, cheap for ``k << n``) otherwise. Its
    state (``parametrizations.weight.original`` and ``parametrizations.weight.0.base``) is plain
    tensors, so artifacts restore it exactly.
    """
    k = n if k is None else k
    if k > n:
        raise vene.ConfigError(
            f"an orthonormal basis of {k} directions does not fit in {n} dimensions; use a "
            f"low_rank_dimension of at most {n}."
        )
    layer = nn.Linear(k, n, bias=False)
    nn.init.orthogonal_(layer.weight)  # pyvene's initialisation of its rotation layers
    if k == n:
        # orthogonal() parametrizes the layer in place and returns it (annotated as a Module)
        return cast(nn.Linear, orthogonal(layer, orthogonal_map="matrix_exp"))
    parametrize.register_parametrization(layer, "weight", _Householder(n), unsafe=True)
    return layer


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    """A ``[batch, width]`` mask broadcast over the middle axes of ``like`` (``[batch, ..., width]``)."""
    if like.dim() >= 2 and mask.shape[0] != like.shape[0]:
        if like.shape[0] % mask.shape[0] != 0:
            raise vene.BatchSizeError(
                f"subspaces are given for {mask.shape[0]} examples, but the intervention receives "
                f"a batch of {like.shape[0]}."
            )
        # generation with several sequences per prompt repeats each example in place
        mask = mask.repeat_interleave(like.shape[0] // mask.shape[0], dim=0)
    if like.dim() < 2:
        return mask
    return mask.view((mask.shape[0],) + (1,) * (like.dim() - 2) + (mask.shape[1],))


def interchange_mask(
    subspaces: Sequence[Sequence[int]] | None,
    interchange_dim: int | None,
    width: int,
    like: Tensor,
) -> Tensor | None:
    """Which of ``width`` coordinates to take from the source, as a float mask, or None for all.

    ``subspaces`` (one list of coordinate indices per example) wins over ``interchange_dim``
    (the first ``interchange_dim`` coordinates). The mask broadcasts against ``like``.
    """
    if subspaces is not None:
        mask = vene.subspace_mask(subspaces, width, device=like.device)
        assert mask is not None  # subspaces is not None
        return _expand(mask, like).to(like.dtype)
    if interchange_dim is None or interchange_dim == width:
        return None
    if not 0 <= interchange_dim <= width:
        raise vene.SubspaceError(
            f"interchange_dim {interchange_dim} is out of range for a basis of {width} "
            f"coordinates; use 0..{width} (set_interchange_dim)."
        )
    mask = torch.zeros(width, dtype=like.dtype, device=like.device)
    mask[:interchange_dim] = 1
    return mask


def restrict(mask: Tensor, subspaces: Sequence[Sequence[int]] | None, like: Tensor) -> Tensor:
    """A learned ``[width]`` mask, zeroed outside each example's subspace when one is given."""
    if subspaces is None:
        return mask
    allowed = vene.subspace_mask(subspaces, mask.shape[-1], device=like.device)
    assert allowed is not None  # subspaces is not None
    return mask * _expand(allowed, like).to(mask.dtype)


def rerecord(module: vene.Intervention, *, drop: Sequence[str] = (), **values: Any) -> None:
    """Rewrite the constructor record that artifacts save (``module.init_kwargs``).

    Used where the JSON record must differ from what the caller passed: a dtype object becomes
    its name, fitted tensors (which live in the state dict) give way to their sizes.
    """
    module.record_init_kwargs(drop=drop, **values)


def dtype_name(dtype: Any) -> str | None:
    """``torch.bfloat16`` or ``"bfloat16"`` -> ``"bfloat16"`` (None stays None)."""
    if dtype is None:
        return None
    return str(resolve_dtype(dtype)).removeprefix("torch.")


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    got = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(got, torch.dtype):
        raise vene.ConfigError(f"dtype {dtype!r} is not a torch dtype; use e.g. torch.bfloat16 or 'float32'.")
    return got


def _identity(x: Tensor) -> Tensor:
    return x


def _gelu_tanh(x: Tensor) -> Tensor:
    return nn.functional.gelu(x, approximate="tanh")


# The names transformers' ACT2FN uses, which pyreft passes as ``act_fn``.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": _identity,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": nn.functional.leaky_relu,
}


def activation(name: str | None) -> Callable[[Tensor], Tensor]:
    if name is None:
        return _identity
    if name not in ACTIVATIONS:
        hint = nearest(name, ACTIVATIONS, 3, cutoff=0.5)
        raise vene.ConfigError(f"unknown act_fn {name!r}.{hint} Known: {', '.join(sorted(ACTIVATIONS))}.")
    return ACTIVATIONS[name]


class Tempered:
    """The temperature of a sigmoid mask: a buffer, so artifacts keep it."""

    temperature: Tensor

    def get_temperature(self) -> Tensor:
        return self.temperature

    @torch.no_grad()
    def set_temperature(self, temp: Any) -> None:
        """Set the temperature (a float or a one-element tensor) in place."""
        value = torch.as_tensor(temp, dtype=self.temperature.dtype).to(self.temperature.device)
        if value.numel() != 1 or not bool(value.reshape(()) > 0):
            raise vene.ConfigError(f"the temperature must be one positive number, got {temp!r}.")
        self.temperature.copy_(value.reshape(()))


class RecordsInterchangeDim:
    """``set_interchange_dim`` also updates the saved constructor record, so a saved artifact
    interchanges the same dimensions when loaded."""

    def set_interchange_dim(self, interchange_dim: int | None) -> None:
        # a mixin: the intervention after it in the method order defines set_interchange_dim
        super().set_interchange_dim(interchange_dim)  # type: ignore[misc]  # unknown to the mixin's own bases
        assert isinstance(self, vene.Intervention), "RecordsInterchangeDim is mixed into interventions only"
        rerecord(self, interchange_dim=interchange_dim)
