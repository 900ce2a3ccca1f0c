"""``IntervenableModel``: construction and the public surface of a wrapped model.

Construction resolves every representation to a :class:`Site` through the plugin resolvers and
builds its intervention through the registry, once. A call then runs a straight pipeline, one
file per step:

1. ``_plan.py``: read the call's sources, locations, subspaces and constants into a plan;
2. ``_sources.py``: the source passes: run the sources the plan needs (batched, each stopped
   after the last site it feeds) and make the base run's writes;
3. ``_base_pass.py``: group the writes by site, run the base with them, build the result;
4. ``_engine.py``: the hooks of each run, removed in a ``finally`` (the cleanup).

``generate`` (``_generate.py``) and the artifacts (``_artifacts.py``) reuse steps 1 and 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn

from . import _artifacts, _generate
from ._base_pass import IntervenableModelOutput, call_result, site_plan
from ._config import IntervenableConfig, RepresentationConfig
from ._engine import RunState, Write, run_hooks
from ._errors import ConfigError
from ._interventions import (
    DistributedRepresentationIntervention,
    Intervention,
    LambdaIntervention,
    VanillaIntervention,
)
from ._model_compat import PyveneMethods
from ._plan import CallPlan, Slot, plan_call
from ._sites import Site
from ._sources import base_writes, count_call
from ._units import Unit
from .plugins import Registry, default_registry

__all__ = [
    "IntervenableModel",
    "IntervenableModelOutput",
    "call_model",
    "ModelInputs",
    "Sources",
    "UnitLocations",
    "Subspaces",
    "SourceRepresentations",
    "RepresentationsLike",
]

ModelInputs: TypeAlias = Mapping[str, Any] | Tensor | Sequence[Any]
"""One input of the wrapped model: a dict of keyword arguments (``{"input_ids": ids}``), a
tensor (the first positional argument), or a list/tuple of positional arguments."""
Sources: TypeAlias = ModelInputs | Sequence[ModelInputs | None] | None
"""One source per intervention group (None skips a group), one source for all, or None."""
UnitLocations: TypeAlias = int | Sequence[Any] | Mapping[str, Any] | Tensor | None
"""``{"sources->base": (source, base)}``, ``{"base": ...}``, a (source, base) pair, the full
``[intervention][example][unit]`` form, or a shorthand (an int, a flat list of ints); see
docs/usage.md."""
Subspaces: TypeAlias = int | Sequence[Any] | Tensor | None
"""Dimensions (or partitions) per ``[intervention][example]``, or an int / flat list for all."""
SourceRepresentations: TypeAlias = Tensor | Sequence[Tensor | None] | Mapping[Any, Tensor] | None
"""Constant sources: one tensor for all, one per intervention, or a dict by key or index."""
RepresentationsLike: TypeAlias = IntervenableConfig | RepresentationConfig | Mapping[str, Any] | Sequence[Any]
"""What ``IntervenableModel`` takes as its config: a config, one representation, or a list."""


def call_model(model: nn.Module, inputs: ModelInputs, **extra: Any) -> Any:
    """Call ``model`` on one input form: ``model(**inputs)`` for a dict, ``model(inputs)`` for a
    tensor, ``model(*inputs)`` for a list or tuple; ``extra`` keywords are passed along."""
    if isinstance(inputs, Mapping):
        return model(**inputs, **extra)
    if isinstance(inputs, Tensor):
        return model(inputs, **extra)
    if isinstance(inputs, (list, tuple)):
        return model(*inputs, **extra)
    raise ConfigError(
        f"model inputs must be a dict of tensors (or a tensor), got {type(inputs).__name__}."
    )


class IntervenableModel(PyveneMethods, nn.Module):
    """A model with interventions at configured sites (pyvene's ``IntervenableModel``).

    ``config`` is an :class:`IntervenableConfig`, a representation (dict or
    :class:`RepresentationConfig`), or a list of them. The wrapped model is frozen (no gradients)
    and put in eval mode; :meth:`enable_model_gradients` undoes that.
    """

    def __init__(
        self,
        config: RepresentationsLike,
        model: nn.Module,
        *,
        use_fast: bool = False,
        as_adaptor: bool = False,
        registry: Registry | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.config = IntervenableConfig.coerce(config)
        self.registry = registry or default_registry()
        self.model = model
        self.use_fast = use_fast
        self.as_adaptor = as_adaptor
        self.mode = self.config.mode
        self._model_grads = False
        saved_kwargs: Sequence[Mapping[str, Any]] | None = kwargs.pop("_saved_kwargs", None)
        if kwargs:
            raise ConfigError(
                f"unknown IntervenableModel option(s): {', '.join(sorted(kwargs))}; options are "
                "use_fast and as_adaptor."
            )
        self._slots, built = self._build(saved_kwargs)
        self.interventions: dict[str, Intervention] = dict(built)
        unique: list[Intervention] = []
        for iv in built.values():
            if not any(iv is u for u in unique):
                unique.append(iv)
        self._intervention_modules = nn.ModuleList(unique)
        self._intervention_modules.to(self.get_device())  # interventions live with the model
        groups = sorted({s.group for s in self._slots})
        self._n_groups = len(groups)
        self.disable_model_gradients()

    # ------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------
    def _build(
        self, saved_kwargs: Sequence[Mapping[str, Any]] | None
    ) -> tuple[tuple[Slot, ...], dict[str, Intervention]]:
        pm = self.registry.pm
        slots = []
        built: dict[str, Intervention] = {}
        links: dict[Any, Intervention] = {}
        group_ids: dict[Any, int] = {}
        for i, rep in enumerate(self.config.representations):
            unit = Unit.parse(rep.unit)
            # core's dotted-path resolver runs last and raises rather than returning None
            site: Site = pm.hook.vene_resolve_site(model=self.model, representation=rep)
            if unit.has_heads and site.heads is None:
                raise ConfigError(
                    f"unit {unit.value!r} needs a head component, but {rep.component!r} is not split "
                    "into heads; use a head_* component (head_query_output, ...) or unit 'pos'."
                )
            gkey = ("group", rep.group_key) if rep.group_key is not None else ("own", i)
            group = group_ids.setdefault(gkey, len(group_ids))
            key = (
                f"layer_{rep.layer}_comp_{rep.component}_unit_{unit.value}"
                f"_nunit_{rep.max_number_of_units}#{i}"
            )
            link = rep.intervention_link_key
            if link is not None and link in links:
                iv = links[link]
            else:
                iv = self._make_intervention(
                    i, rep, site, unit, None if saved_kwargs is None else saved_kwargs[i]
                )
                if link is not None:
                    links[link] = iv
            slots.append(Slot(index=i, key=key, rep=rep, site=site, unit=unit, group=group))
            built[key] = iv
        return tuple(slots), built

    def _resolve_type(self, t: Any) -> type:
        if t is None:
            return VanillaIntervention
        if isinstance(t, str):
            return self.registry.intervention_type(t)
        if isinstance(t, type) and issubclass(t, Intervention):
            return t
        raise ConfigError(
            f"intervention_type must be an Intervention subclass or a registered name, got {t!r}."
        )

    def _make_intervention(
        self,
        i: int,
        rep: RepresentationConfig,
        site: Site,
        unit: Unit,
        saved: Mapping[str, Any] | None,
    ) -> Intervention:
        if rep.intervention is not None:
            iv = rep.intervention
            if isinstance(iv, Intervention):
                return iv
            if isinstance(iv, nn.Module) or not callable(iv):
                raise ConfigError(
                    f"representation {i}: `intervention` must be an Intervention instance or a "
                    f"function f(base, source), got {type(iv).__name__}."
                )
            return LambdaIntervention(function=iv)
        cls = self._resolve_type(rep.intervention_type or self.config.type_for(i))
        if saved is not None:
            kwargs = dict(saved)
        else:
            width = site.unit_dim(unit)
            if width is not None and issubclass(cls, DistributedRepresentationIntervention):
                if not getattr(cls, "keep_last_dim", False):
                    width *= rep.max_number_of_units
            kwargs = {"embed_dim": width, "use_fast": self.use_fast}
            for name in ("low_rank_dimension", "latent_dim"):
                if getattr(rep, name) is not None:
                    kwargs[name] = getattr(rep, name)
            if rep.subspace_partition is not None:
                kwargs["subspace_partition"] = [list(p) for p in rep.subspace_partition]
        if rep.source_representation is not None:
            kwargs["source_representation"] = rep.source_representation
        if rep.hidden_source_representation is not None:
            kwargs["hidden_source_representation"] = rep.hidden_source_representation
        return cls(**kwargs)

    @property
    def n_groups(self) -> int:
        """How many sources a call takes: representations sharing a ``group_key`` share one."""
        return self._n_groups

    # ------------------------------------------------------------------------------------------
    # the call: plan, source passes, base pass (the engine removes its hooks on exit)
    # ------------------------------------------------------------------------------------------
    def forward(
        self,
        base: ModelInputs,
        sources: Sources = None,
        unit_locations: UnitLocations = None,
        source_representations: SourceRepresentations = None,
        subspaces: Subspaces = None,
        labels: Tensor | None = None,
        output_original_output: bool = False,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        intervention_additional_kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``base`` with the interventions; see docs/usage.md for every argument form.

        Returns ``(original_or_None, intervened)``; ``((original_or_None, collected),
        intervened)`` with collect interventions; an :class:`IntervenableModelOutput` with
        ``return_dict=True``.
        """
        extra: dict[str, Any] = {}
        if labels is not None:
            extra["labels"] = labels
        if use_cache is not None:
            extra["use_cache"] = use_cache
        original = call_model(self.model, base, **extra) if output_original_output else None
        state = RunState()
        plan = self._plan(
            base, sources, unit_locations, source_representations, subspaces, intervention_additional_kwargs
        )
        writes = self._source_passes(plan, state)
        hooks = site_plan(self._slots, {i: [w] for i, w in writes.items()})
        with run_hooks(self.model, hooks, state, count_call):
            intervened = call_model(self.model, base, **extra)
        return call_result(self._slots, self.interventions, original, intervened, state, return_dict)

    def _plan(
        self,
        base: Any,
        sources: Any,
        unit_locations: Any,
        source_representations: Any,
        subspaces: Any,
        additional: Mapping[str, Any] | None,
    ) -> CallPlan:
        return plan_call(
            self._slots, self.interventions, self.mode, self._n_groups,
            base, sources, unit_locations, source_representations, subspaces, additional,
        )

    def _source_passes(self, plan: CallPlan, state: RunState) -> dict[int, Write]:
        return base_writes(
            self.model, lambda inputs: call_model(self.model, inputs), self._slots, self.interventions,
            self.mode, self._n_groups, self.as_adaptor, plan, state,
        )

    def generate(
        self,
        base: Mapping[str, Any] | Tensor,
        sources: Sources = None,
        unit_locations: UnitLocations = None,
        source_representations: SourceRepresentations = None,
        intervene_on_prompt: bool = False,
        subspaces: Subspaces = None,
        output_original_output: bool = False,
        intervene_on_steps: Any = None,
        intervention_additional_kwargs: Mapping[str, Any] | None = None,
        **generate_kwargs: Any,
    ) -> Any:
        """Generate with interventions; returns ``(original_or_None, generated_ids)``.

        See ``vene._generate.generate`` and docs/usage.md for where the interventions apply
        (``intervene_on_prompt``, ``intervene_on_steps``).
        """
        return _generate.generate(
            self, base, sources, unit_locations, source_representations, intervene_on_prompt,
            subspaces, output_original_output, intervene_on_steps, intervention_additional_kwargs,
            **generate_kwargs,
        )

    # ------------------------------------------------------------------------------------------
    # artifacts (``_artifacts.py``)
    # ------------------------------------------------------------------------------------------
    def save(
        self,
        save_directory: str,
        save_to_hf_hub: bool = False,
        hf_repo_name: str | None = None,
        include_model: bool = False,
        **options: Any,
    ) -> str:
        """Write ``config.json`` and ``interventions.safetensors`` (and push them, for the Hub);
        ``include_model`` also writes the wrapped model's weights (``model.safetensors``)."""
        return _artifacts.save(self, save_directory, save_to_hf_hub, hf_repo_name, include_model, **options)

    @classmethod
    def load(
        cls,
        load_directory: str,
        model: nn.Module,
        *,
        registry: Registry | None = None,
        **options: Any,
    ) -> IntervenableModel:
        """Rebuild a saved IntervenableModel on ``model`` (a local directory or a store location)."""
        return _artifacts.load(cls, load_directory, model, registry=registry, **options)

    def save_intervention(self, save_directory: str, include_model: bool = True) -> None:
        """Write the interventions' weights only (``interventions.safetensors``).

        ``include_model`` (pyvene's parameter, on by default as there) also writes the wrapped
        model's parameters that need gradients, when there are any (after
        :meth:`enable_model_gradients`), to ``model_trainable.safetensors``.
        """
        _artifacts.save_intervention(self, save_directory, include_model)

    def load_intervention(self, load_directory: str, include_model: bool = True) -> None:
        """Load weights saved by :meth:`save_intervention`, in place; ``include_model`` also
        loads the model parameters saved with them, when the directory holds any."""
        _artifacts.load_intervention(self, load_directory, include_model)

    # ------------------------------------------------------------------------------------------
    # training helpers (pyvene's names)
    # ------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> IntervenableModel:
        """Train mode for the interventions; the model follows only when its gradients are on."""
        self.training = mode
        self._intervention_modules.train(mode)
        if self._model_grads:
            self.model.train(mode)
        return self

    def get_trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self._intervention_modules.parameters() if p.requires_grad]

    def count_parameters(self, include_model: bool = False) -> int:
        params = list(self.get_trainable_parameters())
        if include_model:
            params += [p for p in self.model.parameters() if p.requires_grad]
        return sum(p.numel() for p in params)

    def enable_model_gradients(self) -> None:
        """Let gradients reach the wrapped model (for interchange intervention training)."""
        self._model_grads = True
        for p in self.model.parameters():
            p.requires_grad_(True)

    def disable_model_gradients(self) -> None:
        """Freeze the wrapped model again: no gradients, eval mode."""
        self._model_grads = False
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._intervention_modules.zero_grad(set_to_none=set_to_none)
        if self._model_grads:
            self.model.zero_grad(set_to_none=set_to_none)

    def set_device(self, device: Any, set_model: bool = True) -> IntervenableModel:
        self._intervention_modules.to(device)
        if set_model:
            self.model.to(device)
        return self

    def get_device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def set_temperature(self, temp: Any) -> None:
        for iv in self._intervention_modules:
            setter = getattr(iv, "set_temperature", None)
            if callable(setter):
                setter(temp)

    def set_interchange_dim(self, interchange_dim: int) -> None:
        for iv in self._intervention_modules:
            setter = getattr(iv, "set_interchange_dim", None)
            if callable(setter):
                setter(interchange_dim)

    def train_alignment(self, *args: Any, **kwargs: Any) -> Any:
        """pyvene's DAS training loop; provided by the ``das`` trainer of vene-train."""
        return self.registry.trainer("das")(self).train_alignment(*args, **kwargs)

    def eval_alignment(self, *args: Any, **kwargs: Any) -> Any:
        """pyvene's alignment evaluation; provided by the ``das`` trainer of vene-train."""
        return self.registry.trainer("das")(self).eval_alignment(*args, **kwargs)

    @property
    def sorted_keys(self) -> list[str]:
        return [s.key for s in self._slots]

    @property
    def representations(self) -> dict[str, Site]:
        return {s.key: s.site for s in self._slots}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}(mode={self.mode!r}, model={type(self.model).__name__},"]
        for s in self._slots:
            iv = self.interventions[s.key]
            lines.append(
                f"  {s.key}: {type(iv).__name__} at {s.site.module or '<model>'}.{s.site.side.value}"
                f" (group {s.group})"
            )
        lines.append(")")
        return "\n".join(lines)
