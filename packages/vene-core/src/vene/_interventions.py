"""The intervention protocol and core's static interventions.

An intervention is an ``nn.Module`` called on the gathered units of a site::

    intervention(base, source=None, subspaces=None, **kwargs) -> Tensor | InterventionOutput

``base`` (and ``source``) have shape ``[batch, units, width]`` for ``pos`` units, ``[batch,
heads, seq, width]`` for ``h`` units and ``[batch, heads, positions, width]`` for ``h.pos`` units.
A :class:`DistributedRepresentationIntervention` (a learned basis such as DAS) instead receives
the units concatenated, ``[batch, units * width]``, unless its ``keep_last_dim`` is true.
``subspaces`` is None or one list of feature indices per example (partitions already expanded);
:func:`subspace_mask` turns it into a boolean mask.

The marker classes say what the engine must feed an intervention: a source run
(the default), a constant source (:class:`ConstantSourceIntervention`), or nothing
(:class:`SourcelessIntervention`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from ._errors import ConfigError, SubspaceError

__all__ = [
    "Intervention",
    "TrainableIntervention",
    "ConstantSourceIntervention",
    "SourcelessIntervention",
    "LocalistRepresentationIntervention",
    "DistributedRepresentationIntervention",
    "BasisAgnosticIntervention",
    "InterventionOutput",
    "VanillaIntervention",
    "AdditionIntervention",
    "SubtractionIntervention",
    "ZeroIntervention",
    "CollectIntervention",
    "NoiseIntervention",
    "SkipIntervention",
    "LambdaIntervention",
    "subspace_mask",
    "STATIC_INTERVENTIONS",
]


class InterventionOutput(NamedTuple):
    """What an intervention may return instead of a tensor: the output and a latent to collect."""

    output: Tensor
    latent: Any = None


def subspace_mask(
    subspaces: Sequence[Sequence[int]] | None, width: int, *, device: Any = None
) -> Tensor | None:
    """A ``[batch, width]`` boolean mask that is true on each example's subspace indices."""
    if subspaces is None:
        return None
    mask = torch.zeros(len(subspaces), width, dtype=torch.bool)
    for i, dims in enumerate(subspaces):
        for d in dims:
            if not -width <= d < width:
                raise SubspaceError(
                    f"subspace index {d} is out of range for a unit of width {width}; indices run "
                    f"0..{width - 1}."
                )
        mask[i, list(dims)] = True
    return mask.to(device) if device is not None else mask


def _expand_mask(mask: Tensor, like: Tensor) -> Tensor:
    """Broadcast a [batch, width] mask over the unit axes of ``like`` ([batch, ..., width])."""
    shape = (mask.shape[0],) + (1,) * (like.dim() - 2) + (mask.shape[1],)
    return mask.view(shape)


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


class Intervention(nn.Module):
    """Base class of every intervention.

    Constructor keyword arguments are recorded (``init_kwargs``) so that an artifact can rebuild the
    intervention by registered name; tensors among them are saved as buffers instead. Known keyword
    arguments: ``embed_dim`` (the width of what the intervention receives), ``subspace_partition``,
    ``interchange_dim``, ``use_fast``, ``source_representation``, ``low_rank_dimension``,
    ``latent_dim``. Unknown keyword arguments are accepted and ignored by the base class.
    """

    type_name: ClassVar[str | None] = None
    trainable: ClassVar[bool] = False
    needs_source: ClassVar[bool] = True
    """Whether the intervention is skipped when its group's source is None (and it has no
    constant). False for constant-source and sourceless interventions and for functions, which
    are then applied with ``source=None``, as in pyvene (a ROME-style corruption beside a restore)."""
    keep_last_dim: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Intervention:
        obj = super().__new__(cls)
        recorded: dict[str, Any] = dict(kwargs)
        try:
            sig = inspect.signature(cls.__init__)
            bound = sig.bind(obj, *args, **kwargs)
        except TypeError:
            pass  # __init__ raises the real error
        else:
            recorded = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = sig.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    recorded[name] = value
        obj.__dict__["_init_kwargs"] = recorded
        return obj

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.embed_dim: int | None = kwargs.get("embed_dim")
        self.interchange_dim: int | None = kwargs.get("interchange_dim")
        partition = kwargs.get("subspace_partition")
        self.subspace_partition = (
            [list(p) for p in partition] if partition is not None else None
        )
        self.use_fast: bool = bool(kwargs.get("use_fast", False))
        if kwargs.get("keep_last_dim") is not None:
            self.keep_last_dim = bool(kwargs["keep_last_dim"])
        source = kwargs.get("source_representation")
        # a buffer even when empty, so that a loaded artifact can fill it in
        self.register_buffer(
            "source_representation", None if source is None else torch.as_tensor(source)
        )

    # -- the record used by artifacts -----------------------------------------------------------
    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The JSON-ready constructor arguments (tensors live in the state dict instead)."""
        out = {}
        for k, v in self.__dict__.get("_init_kwargs", {}).items():
            if isinstance(v, Tensor):
                continue
            if not _jsonable(v):
                raise ConfigError(
                    f"{type(self).__name__} was built with {k}={v!r}, which cannot be written to "
                    "config.json; pass plain numbers, strings or lists."
                )
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    def record_init_kwargs(self, *, drop: Sequence[str] = (), **kwargs: Any) -> None:
        """Update the recorded constructor arguments: state set after construction that an
        artifact must rebuild (a fitted size, an interchange dimension); ``drop`` forgets some."""
        record = self.__dict__.setdefault("_init_kwargs", {})
        for name in drop:
            record.pop(name, None)
        record.update(kwargs)

    def set_interchange_dim(self, interchange_dim: int) -> None:
        self.interchange_dim = interchange_dim
        self.record_init_kwargs(interchange_dim=interchange_dim)

    def set_source_representation(self, source_representation: Any) -> None:
        """Set the constant source (a tensor, kept in the state dict so artifacts carry it)."""
        current: Tensor | None = self._buffers.get("source_representation")
        value = torch.as_tensor(source_representation)
        self.source_representation = value if current is None else value.to(current.device)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> Tensor | InterventionOutput:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}" if self.embed_dim is not None else ""


class LocalistRepresentationIntervention(Intervention):
    """Marker: acts on individual features of each unit (receives ``[batch, units, width]``)."""


class DistributedRepresentationIntervention(Intervention):
    """Marker: acts in a learned basis over all units (receives ``[batch, units * width]``)."""


class BasisAgnosticIntervention(Intervention):
    """Marker: the result does not depend on the basis (interchange of everything, additions)."""


class TrainableIntervention(Intervention):
    """Marker: has parameters to learn; the engine keeps gradients flowing to them."""

    trainable = True

    def tie_weight(self, linked_intervention: TrainableIntervention) -> None:
        """Share parameters with ``linked_intervention`` (used by ``intervention_link_key``)."""


class ConstantSourceIntervention(Intervention):
    """Marker: accepts a constant source (``source_representation``) in place of a source run.

    A subclass is applied even when its group's source is None (with ``source=None``), as pyvene
    applies its constant-source interventions; vene's interchange, addition and subtraction set
    ``needs_source`` back to True, since they need a source or a constant.
    """

    needs_source: ClassVar[bool] = False


class SourcelessIntervention(Intervention):
    """Marker: needs no source at all (ablations, collection, noise)."""

    needs_source: ClassVar[bool] = False


def _combine(
    base: Tensor,
    value: Tensor,
    subspaces: Any,
    interchange_dim: int | None,
) -> Tensor:
    """Take ``value`` on the selected features (subspaces, or the first ``interchange_dim``)."""
    width = base.shape[-1]
    mask = subspace_mask(subspaces, width, device=base.device)
    if mask is not None:
        mask = _expand_mask(mask, base)
        return torch.where(mask, value.to(base.dtype), base)
    if interchange_dim is not None and interchange_dim < width:
        return torch.cat([value[..., :interchange_dim].to(base.dtype), base[..., interchange_dim:]], -1)
    return value.to(base.dtype).expand_as(base) if value.shape != base.shape else value.to(base.dtype)


def _need(source: Tensor | None, who: str) -> Tensor:
    if source is None:
        raise ConfigError(
            f"{who} needs a source: pass `sources`, or a constant through "
            "`source_representations` / the representation's `source_representation`."
        )
    return source


class VanillaIntervention(
    ConstantSourceIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Interchange: the selected features of the base are replaced by the source's."""

    needs_source: ClassVar[bool] = True

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return _combine(base, _need(source, "VanillaIntervention"), subspaces, self.interchange_dim)


class AdditionIntervention(
    ConstantSourceIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Steering: ``base + source`` on the selected features."""

    needs_source: ClassVar[bool] = True

    def forward(self, base, source=None, subspaces=None, **kwargs):
        source = _need(source, "AdditionIntervention")
        return _combine(base, base + source.to(base.dtype), subspaces, self.interchange_dim)


class SubtractionIntervention(
    ConstantSourceIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """``base - source`` on the selected features."""

    needs_source: ClassVar[bool] = True

    def forward(self, base, source=None, subspaces=None, **kwargs):
        source = _need(source, "SubtractionIntervention")
        return _combine(base, base - source.to(base.dtype), subspaces, self.interchange_dim)


class ZeroIntervention(
    SourcelessIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Ablation: the selected features are set to zero."""

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return _combine(base, torch.zeros_like(base), subspaces, self.interchange_dim)


class CollectIntervention(
    SourcelessIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Leaves the units unchanged and records them (the selected features, if subspaces)."""

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if subspaces is not None:
            index = torch.as_tensor(subspaces, device=base.device)
            shape = (index.shape[0],) + (1,) * (base.dim() - 2) + (index.shape[1],)
            latent = base.gather(-1, index.view(shape).expand(*base.shape[:-1], index.shape[1]))
            return InterventionOutput(base, latent)
        return InterventionOutput(base, base)


class NoiseIntervention(
    SourcelessIntervention, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Causal tracing's corruption: ``base + noise_level * N(0, 1)`` on the selected features.

    The noise has the shape of whatever it receives (any number of units). With ``seed`` set
    (default 0) each call draws the same noise; ``seed=None`` draws fresh noise every call.
    The default level, 0.13462981581687927, is three times the standard deviation of GPT-2 XL's
    token embeddings, as in ROME's causal tracing (Meng et al., 2022).
    """

    def __init__(self, noise_level: float = 0.13462981581687927, seed: int | None = 0, **kwargs):
        super().__init__(**kwargs)
        self.noise_level = float(noise_level)
        self.seed = seed

    def forward(self, base, source=None, subspaces=None, **kwargs):
        generator = None
        if self.seed is not None:
            generator = torch.Generator(device=base.device).manual_seed(int(self.seed))
        noise = torch.randn(base.shape, generator=generator, device=base.device, dtype=base.dtype)
        return _combine(base, base + self.noise_level * noise, subspaces, self.interchange_dim)

    def extra_repr(self) -> str:
        return f"noise_level={self.noise_level}, seed={self.seed}"


class SkipIntervention(SourcelessIntervention, BasisAgnosticIntervention):
    """Skips the module: its output units are replaced by the same units of its input.

    The engine passes the module's input units as ``module_input``; use it on the output side of
    a module whose input and output have the same shape (a residual block).
    """

    needs_module_input: ClassVar[bool] = True

    def forward(self, base, source=None, subspaces=None, module_input=None, **kwargs):
        if module_input is None:
            raise ConfigError(
                "SkipIntervention needs the module's input; put it on an '.output' site of a "
                "module whose first input has the output's shape (e.g. block_output)."
            )
        return _combine(base, module_input, subspaces, self.interchange_dim)


class LambdaIntervention(Intervention):
    """Wraps a plain function ``f(base, source)`` or ``f(base, source, subspaces)``.

    Like pyvene's, a function is called with ``source=None`` when its group's source is None.
    """

    needs_source: ClassVar[bool] = False

    def __init__(self, function: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(function):
            raise ConfigError(f"an intervention function must be callable, got {function!r}.")
        self.function = function
        try:
            params = inspect.signature(function).parameters
            self._takes_subspaces = len(params) >= 3 or any(
                p.kind is p.VAR_POSITIONAL for p in params.values()
            )
        except (TypeError, ValueError):
            self._takes_subspaces = False

    @property
    def init_kwargs(self) -> dict[str, Any]:
        raise ConfigError(
            f"the intervention function {getattr(self.function, '__name__', self.function)!r} "
            "cannot be saved: a function is code, and vene artifacts never store code. Save a "
            "registered intervention type instead."
        )

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if self._takes_subspaces:
            return self.function(base, source, subspaces)
        return self.function(base, source)

    def extra_repr(self) -> str:
        return getattr(self.function, "__name__", repr(self.function))


STATIC_INTERVENTIONS: tuple[type[Intervention], ...] = (
    VanillaIntervention,
    AdditionIntervention,
    SubtractionIntervention,
    ZeroIntervention,
    CollectIntervention,
    NoiseIntervention,
    SkipIntervention,
)
