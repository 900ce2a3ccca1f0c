"""Configuration records: which representations to intervene on, and with what."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from attrs import field, frozen

from ._errors import ConfigError

__all__ = ["RepresentationConfig", "IntervenableConfig", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_REP_FIELDS = (
    "layer",
    "component",
    "unit",
    "max_number_of_units",
    "low_rank_dimension",
    "intervention_type",
    "intervention",
    "subspace_partition",
    "group_key",
    "intervention_link_key",
    "moe_key",
    "source_representation",
    "hidden_source_representation",
    "latent_dim",
)


def _type(value: Any) -> str:
    return type(value).__name__


def _positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"{attribute.name} must be a positive int, got {value!r} ({_type(value)}); "
            f"pass e.g. {attribute.name}=1."
        )


def _optional_positive_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _positive_int(instance, attribute, value)


def _as_index(value: Any) -> Any:
    """An integer of any kind (``numpy.int64`` from ``np.arange``, a 0-d tensor) as an int;
    anything else unchanged, for the validator to refuse with its reason."""
    if isinstance(value, (bool, int)):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def _layer(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        hint = f"layer={int(value)}" if isinstance(value, str) and value.strip().isdigit() else "layer=0"
        raise ConfigError(f"layer must be an int (the layer index), got {value!r} ({_type(value)}); use {hint}.")


def _hashable_key(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    try:
        hash(value)
    except TypeError:
        raise ConfigError(
            f"{attribute.name} must be hashable (a str or an int), got {value!r} ({_type(value)}); "
            f"use a string or integer key, e.g. {attribute.name}=0."
        ) from None


def _intervention_type(value: Any, what: str = "intervention_type") -> None:
    """A class, a registered name or None; an instance gets a hint to use ``intervention=``."""
    from ._interventions import Intervention

    if value is None or isinstance(value, str):
        return
    if isinstance(value, type) and issubclass(value, Intervention):
        return
    if isinstance(value, Intervention):
        raise ConfigError(
            f"{what} takes an intervention class or a registered name, got the instance "
            f"{type(value).__name__}(...); pass the instance as intervention=..., or the class "
            f"{what}={type(value).__name__}."
        )
    raise ConfigError(
        f"{what} must be an Intervention subclass or a registered name, got {value!r} "
        f"({_type(value)}); use e.g. {what}=vene.VanillaIntervention or {what}='VanillaIntervention'."
    )


def _intervention(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    from torch import nn

    from ._interventions import Intervention

    if value is None or isinstance(value, Intervention):
        return
    if isinstance(value, type):
        raise ConfigError(
            f"intervention takes an instance (or a function f(base, source)), got the class "
            f"{value.__name__}; pass intervention={value.__name__}(), or intervention_type={value.__name__}."
        )
    if isinstance(value, nn.Module) or not callable(value):
        raise ConfigError(
            f"intervention must be a vene Intervention instance or a function f(base, source), got "
            f"{_type(value)}; subclass vene.Intervention, or wrap the module in a function."
        )


def _partition(value: Any) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    try:
        parts = tuple((int(a), int(b)) for a, b in value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"subspace_partition must be a list of [start, end) pairs such as [[0, 64], [64, 128]], "
            f"got {value!r}."
        ) from None
    for a, b in parts:
        if not 0 <= a < b:
            raise ConfigError(f"subspace_partition entry [{a}, {b}] is empty or negative.")
    return parts


@frozen(init=False)
class RepresentationConfig:
    """One intervention site and how to intervene on it (pyvene's fields and defaults).

    Give it as this class, a dict of these fields, or a positional list in this order.
    ``intervention_type`` (a class, or the registered name of one) and ``intervention`` (a ready
    instance, or a plain function ``f(base, source)``) are mutually exclusive. Every field is
    checked when the record is built: a misspelled or unknown field, a wrong type or an
    unhashable key is a :class:`ConfigError` naming the field.
    """

    layer: int = field(default=0, converter=_as_index, validator=_layer)
    component: str = "block_output"
    unit: str = "pos"
    max_number_of_units: int = field(default=1, converter=_as_index, validator=_positive_int)
    low_rank_dimension: int | None = field(default=None, validator=_optional_positive_int)
    intervention_type: Any = field(default=None, validator=lambda i, a, v: _intervention_type(v))
    intervention: Any = field(default=None, eq=False, validator=_intervention)
    subspace_partition: tuple[tuple[int, int], ...] | None = field(
        default=None, converter=_partition
    )
    group_key: Any = field(default=None, validator=_hashable_key)
    intervention_link_key: Any = field(default=None, validator=_hashable_key)
    moe_key: Any = field(default=None, validator=_hashable_key)
    source_representation: Any = field(default=None, eq=False)
    hidden_source_representation: Any = field(default=None, eq=False)
    latent_dim: int | None = field(default=None, validator=_optional_positive_int)

    def __init__(
        self,
        layer: int = 0,
        component: str = "block_output",
        unit: str = "pos",
        max_number_of_units: int = 1,
        low_rank_dimension: int | None = None,
        intervention_type: Any = None,
        intervention: Any = None,
        subspace_partition: Any = None,
        group_key: Any = None,
        intervention_link_key: Any = None,
        moe_key: Any = None,
        source_representation: Any = None,
        hidden_source_representation: Any = None,
        latent_dim: int | None = None,
        *extra: Any,
        **unknown: Any,
    ) -> None:
        if extra:
            raise ConfigError(
                f"a positional representation has at most {len(_REP_FIELDS)} fields "
                f"({', '.join(_REP_FIELDS)}), got {len(_REP_FIELDS) + len(extra)}."
            )
        if unknown:
            _unknown_field(sorted(unknown)[0])
        self.__attrs_init__(  # type: ignore[attr-defined]  # attrs adds it with init=False
            layer, component, unit, max_number_of_units, low_rank_dimension, intervention_type,
            intervention, subspace_partition, group_key, intervention_link_key, moe_key,
            source_representation, hidden_source_representation, latent_dim,
        )

    def __attrs_post_init__(self) -> None:
        if self.intervention is not None and self.intervention_type is not None:
            raise ConfigError(
                f"representation (layer {self.layer}, {self.component!r}) gives both "
                "`intervention` and `intervention_type`; give one: a ready instance (or function) "
                "in `intervention`, or a class in `intervention_type`."
            )
        if not isinstance(self.component, str):
            raise ConfigError(
                f"component must be a string, got {self.component!r} ({_type(self.component)}); "
                "use an abstract name such as 'block_output' or a dotted path such as 'h[0].mlp.output'."
            )
        from ._sites import Unit

        Unit.parse(self.unit)

    @classmethod
    def coerce(cls, value: Any) -> RepresentationConfig:
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(_REP_FIELDS)
            if unknown:
                _unknown_field(sorted(unknown, key=str)[0])
            return cls(**value)
        if isinstance(value, Sequence) and not isinstance(value, str):
            return cls(*value)
        raise ConfigError(
            f"cannot read a representation from {type(value).__name__}; give a "
            "RepresentationConfig, a dict of its fields or a positional list."
        )


def _unknown_field(name: Any) -> None:
    from ._errors import nearest

    raise ConfigError(
        f"unknown representation field {name!r}.{nearest(str(name), _REP_FIELDS)} "
        f"Fields: {', '.join(_REP_FIELDS)}."
    )


def _representations(value: Any) -> tuple[RepresentationConfig, ...]:
    if isinstance(value, (RepresentationConfig, Mapping)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError("representations must be a list of representations (or a single one).")
    # A flat positional list such as [0, "block_output"] is one representation, not several.
    if value and not isinstance(value[0], (RepresentationConfig, Mapping, list, tuple)):
        value = [value]
    return tuple(RepresentationConfig.coerce(v) for v in value)


def _mode(value: str) -> str:
    if not isinstance(value, str) or value not in ("parallel", "serial"):
        raise ConfigError(f"mode must be 'parallel' or 'serial', got {value!r}; use mode='parallel'.")
    return value


def _intervention_types(value: Any) -> None:
    if isinstance(value, (list, tuple)):
        for i, t in enumerate(value):
            _intervention_type(t, f"intervention_types[{i}]")
    else:
        _intervention_type(value, "intervention_types")


_CONFIG_ARGS = (
    "representations", "intervention_types", "mode", "sorted_keys", "model_type",
    "intervention_dimensions", "intervention_constant_sources",
)


# keys pyvene's config (a transformers PretrainedConfig) carries that mean nothing to vene
_IGNORED_CONFIG_KEYS = frozenset({"transformers_version", "architectures", "_name_or_path", "name_or_path"})


@frozen(init=False)
class IntervenableConfig:
    """The representations to intervene on, their default intervention type(s) and the mode.

    ``intervention_types`` is one class (or registered name) for all representations, or one per
    representation. ``mode="parallel"`` reads every source from its own unintervened run;
    ``mode="serial"`` chains them (source 0 intervenes on source 1, ..., the last on the base).
    pyvene's bookkeeping arguments (``sorted_keys``, ``intervention_dimensions``,
    ``intervention_constant_sources``) are accepted and kept, not used: vene derives them.
    """

    representations: tuple[RepresentationConfig, ...] = field(
        factory=lambda: (RepresentationConfig(),), converter=_representations
    )
    intervention_types: Any = field(default=None, validator=lambda i, a, v: _intervention_types(v))
    mode: str = field(default="parallel", validator=lambda i, a, v: _mode(v))
    model_type: Any = field(default=None, eq=False)
    sorted_keys: Any = field(default=None, eq=False)
    intervention_dimensions: Any = field(default=None, eq=False)
    intervention_constant_sources: Any = field(default=None, eq=False)

    def __init__(
        self,
        representations: Any = None,
        intervention_types: Any = None,
        mode: str = "parallel",
        sorted_keys: Any = None,
        model_type: Any = None,
        intervention_dimensions: Any = None,
        intervention_constant_sources: Any = None,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - _IGNORED_CONFIG_KEYS
        if unknown:
            from ._errors import nearest

            bad = sorted(unknown)[0]
            raise ConfigError(
                f"IntervenableConfig got unknown arguments {sorted(unknown)}.{nearest(bad, _CONFIG_ARGS)} "
                "It takes representations, intervention_types, mode (and pyvene's sorted_keys, "
                "model_type, intervention_dimensions, intervention_constant_sources)."
            )
        self.__attrs_init__(  # type: ignore[attr-defined]  # attrs adds it with init=False
            (RepresentationConfig(),) if representations is None else representations,
            intervention_types,
            mode,
            model_type,
            sorted_keys,
            intervention_dimensions,
            intervention_constant_sources,
        )

    def add_intervention(self, representations: Any) -> None:
        """Append one representation or a list of them (pyvene's in-place edit of a config).

        The config is otherwise immutable; this is the one mutation pyvene code relies on, and
        it only takes effect for models built after it.
        """
        more = representations if isinstance(representations, list) else [representations]
        added = tuple(RepresentationConfig.coerce(r) for r in more)
        object.__setattr__(self, "representations", (*self.representations, *added))

    @classmethod
    def coerce(cls, value: Any) -> IntervenableConfig:
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping) and "representations" in value:
            return cls(**value)
        return cls(representations=value)

    def type_for(self, i: int) -> Any:
        """The configured default intervention type of representation ``i`` (or None)."""
        types = self.intervention_types
        if isinstance(types, (list, tuple)):
            if len(types) != len(self.representations):
                raise ConfigError(
                    f"intervention_types has {len(types)} entries for "
                    f"{len(self.representations)} representations; give one type, or one per "
                    "representation."
                )
            return types[i]
        return types

    # --- JSON --------------------------------------------------------------------------------
    def to_dict(self, type_names: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON-ready dict. ``type_names`` gives the registered type name per representation."""
        reps = []
        for i, rep in enumerate(self.representations):
            d = {}
            for name in _REP_FIELDS:
                if name in (
                    "intervention",
                    "intervention_type",
                    "source_representation",
                    "hidden_source_representation",
                ):
                    continue
                v = getattr(rep, name)
                d[name] = [list(p) for p in v] if name == "subspace_partition" and v else v
            if type_names is not None:
                d["intervention_type"] = type_names[i]
            reps.append(d)
        return {"schema_version": SCHEMA_VERSION, "mode": self.mode, "representations": reps}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntervenableConfig:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"config schema_version {version!r} is not supported by this vene-core "
                f"(which reads version {SCHEMA_VERSION}); upgrade vene-core."
            )
        reps = [RepresentationConfig.coerce(dict(r)) for r in data["representations"]]
        return cls(representations=reps, mode=data.get("mode", "parallel"))

    def to_json(self, type_names: Sequence[str] | None = None) -> str:
        return json.dumps(self.to_dict(type_names), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IntervenableConfig:
        return cls.from_dict(json.loads(text))
