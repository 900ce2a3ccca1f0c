"""``IntervenableModel``: a model wrapped with interventions at resolved sites.

Construction resolves every representation to a :class:`Site` through the plugin resolvers and
builds its intervention through the registry, once. Each call normalises its arguments into an
explicit plan, runs the sources it needs (batched into one forward where their shapes allow, and
stopped after the last site they feed), then runs the base with the interventions applied, and
removes exactly the hooks it added.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from attrs import define, evolve, frozen
from torch import Tensor, nn

from . import _artifacts as art
from ._config import IntervenableConfig, RepresentationConfig
from ._engine import Capture, Loc, RunState, StopForward, Write, run_hooks
from ._errors import (
    ArtifactError,
    BatchSizeError,
    ConfigError,
    MissingPluginError,
    UnitLocationError,
    VeneError,
)
from ._interventions import (
    CollectIntervention,
    DistributedRepresentationIntervention,
    Intervention,
    LambdaIntervention,
    SourcelessIntervention,
    VanillaIntervention,
)
from ._locations import normalize_subspaces, side_locs, split_pair
from ._sites import Site, Unit
from ._version import __version__
from .plugins import Registry, default_registry, type_name

__all__ = ["IntervenableModel", "IntervenableModelOutput"]


@define
class IntervenableModelOutput:
    """What ``forward(..., return_dict=True)`` returns."""

    original_outputs: Any = None
    intervened_outputs: Any = None
    collected_activations: list[Tensor] | None = None
    latents: dict[str, list[Any]] | None = None


@frozen
class _Slot:
    """One representation, resolved once at construction."""

    index: int
    key: str
    rep: RepresentationConfig
    site: Site
    unit: Unit
    group: int


def _batch_size(inputs: Any, what: str) -> int:
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


def _concat(inputs: Sequence[Any]) -> Any | None:
    """One batched input for several source inputs of the same structure, or None."""
    first = inputs[0]
    if not all(isinstance(i, Mapping) for i in inputs):
        if all(isinstance(i, Tensor) for i in inputs) and len({i.shape[1:] for i in inputs}) == 1:
            return torch.cat(list(inputs), 0)
        return None
    if any(set(i) != set(first) for i in inputs):
        return None
    out = {}
    for k, v in first.items():
        others = [i[k] for i in inputs]
        if isinstance(v, Tensor):
            if not all(isinstance(o, Tensor) and o.shape == v.shape for o in others):
                return None
            out[k] = torch.cat(others, 0) if v.dim() > 0 else v
        else:
            if any(o is not v and o != v for o in others):
                return None
            out[k] = v
    return out


def call_model(model: nn.Module, inputs: Any, **extra: Any) -> Any:
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


class IntervenableModel(nn.Module):
    """A model with interventions at configured sites (pyvene's ``IntervenableModel``).

    ``config`` is an :class:`IntervenableConfig`, a representation (dict or
    :class:`RepresentationConfig`), or a list of them. The wrapped model is frozen (no gradients)
    and put in eval mode; :meth:`enable_model_gradients` undoes that.
    """

    def __init__(
        self,
        config: Any,
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
    ) -> tuple[tuple[_Slot, ...], dict[str, Intervention]]:
        pm = self.registry.pm
        slots = []
        built: dict[str, Intervention] = {}
        links: dict[Any, Intervention] = {}
        group_ids: dict[Any, int] = {}
        for i, rep in enumerate(self.config.representations):
            unit = Unit.parse(rep.unit)
            site = pm.hook.vene_resolve_site(model=self.model, representation=rep)
            if site is None:  # pragma: no cover - core's fallback raises instead
                raise ConfigError(f"no resolver handles {rep.component!r}")
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
            slots.append(_Slot(index=i, key=key, rep=rep, site=site, unit=unit, group=group))
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

    # ------------------------------------------------------------------------------------------
    # calling the model
    # ------------------------------------------------------------------------------------------
    def _call(self, inputs: Any, extra: Mapping[str, Any] | None = None) -> Any:
        return call_model(self.model, inputs, **dict(extra or {}))

    @property
    def n_groups(self) -> int:
        """How many sources a call takes: representations sharing a ``group_key`` share one."""
        return self._n_groups

    def _on_call(self, state: RunState, args: tuple, kwargs: dict) -> None:
        state.step += 1

    # ------------------------------------------------------------------------------------------
    # normalising a call
    # ------------------------------------------------------------------------------------------
    def _sources(self, sources: Any, batch: int) -> list[Any] | None:
        if sources is None:
            return None
        if isinstance(sources, (Mapping, Tensor)):
            sources = [sources]
        sources = list(sources)
        g = self._n_groups
        if len(sources) == 1 and g > 1:
            sources = sources * g
        if len(sources) != g:
            raise ConfigError(
                f"got {len(sources)} sources for {g} intervention groups; give one source per "
                "group (representations that share a group_key form one group), a single source "
                "for all of them, or None to skip a group."
            )
        for j, s in enumerate(sources):
            if s is not None and _batch_size(s, f"source {j}") != batch:
                raise BatchSizeError(
                    f"source {j} has batch size {_batch_size(s, f'source {j}')} but the base has "
                    f"{batch}; every source must pair one example with each base example."
                )
        return sources

    def _constants(self, source_representations: Any) -> list[Any]:
        n = len(self._slots)
        if source_representations is None:
            return [None] * n
        if isinstance(source_representations, Tensor):
            return [source_representations] * n
        if isinstance(source_representations, Mapping):
            keys = {s.key: s.index for s in self._slots}
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

    def _locations(self, unit_locations: Any, batch: int) -> list[tuple[Loc, Loc]]:
        """Per slot: (source location, base location)."""
        units = [s.unit for s in self._slots]
        if self.mode == "serial":
            return self._serial_locations(unit_locations, batch)
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

    def _serial_locations(self, unit_locations: Any, batch: int) -> list[tuple[Loc, Loc]]:
        g = self._n_groups
        by_group: dict[int, list[_Slot]] = {}
        for s in self._slots:
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
            slots = by_group[k]
            if isinstance(unit_locations, Mapping):
                name = f"source_{k}->source_{k + 1}" if k < g - 1 else f"source_{g - 1}->base"
                value = unit_locations.get(name)
            else:
                value = unit_locations
            src, tgt = split_pair(value) if value is not None else (None, None)
            units = [s.unit for s in slots]
            for s, a, b in zip(slots, side_locs(src, units, batch), side_locs(tgt, units, batch)):
                out[s.index] = (a, b)
        return [out[i] for i in range(len(self._slots))]

    def _partitions(self) -> list[Any]:
        return [s.rep.subspace_partition for s in self._slots]

    # ------------------------------------------------------------------------------------------
    # the call
    # ------------------------------------------------------------------------------------------
    def forward(
        self,
        base: Any,
        sources: Any = None,
        unit_locations: Any = None,
        source_representations: Any = None,
        subspaces: Any = None,
        labels: Tensor | None = None,
        output_original_output: bool = False,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        intervention_additional_kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``base`` with the interventions; see the module docs for every argument form."""
        extra: dict[str, Any] = {}
        if labels is not None:
            extra["labels"] = labels
        if use_cache is not None:
            extra["use_cache"] = use_cache
        original = self._call(base, extra) if output_original_output else None
        state = RunState()
        writes = self._prepare(
            base, sources, unit_locations, source_representations, subspaces,
            intervention_additional_kwargs, state,
        )
        plan = self._plan(writes)
        with run_hooks(self.model, plan, state, self._on_call):
            intervened = self._call(base, extra)
        return self._result(original, intervened, state, return_dict)

    def _result(self, original: Any, intervened: Any, state: RunState, return_dict: bool | None) -> Any:
        has_collect = any(isinstance(self.interventions[s.key], CollectIntervention) for s in self._slots)
        collected: list[Any] | None = None
        if has_collect:
            collected = []
            for s in self._slots:
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

    def _plan(self, writes: Mapping[int, Write]) -> list[tuple[Site, list[Write], list[Capture]]]:
        """Group writes by site, in representation order."""
        plan: dict[Site, tuple[list[Write], list[Capture]]] = {}
        for s in self._slots:
            w = writes.get(s.index)
            if w is not None:
                plan.setdefault(s.site, ([], []))[0].append(w)
        return [(site, w, c) for site, (w, c) in plan.items()]

    def _source_kind(self, slot: _Slot, constant: Any, sources: list[Any] | None) -> str:
        iv = self.interventions[slot.key]
        if constant is not None or getattr(iv, "source_representation", None) is not None:
            return "constant"
        if isinstance(iv, SourcelessIntervention):
            return "none"
        if sources is None:
            return "none"
        if self.mode == "parallel" and sources[slot.group] is None:
            return "skip"
        if self.mode == "serial" and sources[slot.group] is None:
            return "skip"
        return "run"

    def _prepare(
        self,
        base: Any,
        sources: Any,
        unit_locations: Any,
        source_representations: Any,
        subspaces: Any,
        additional: Mapping[str, Any] | None,
        state: RunState,
        *,
        stop_base: bool = False,
    ) -> dict[int, Write]:
        """Normalise the call, run the sources it needs; return the base run's writes."""
        batch = _batch_size(base, "base")
        srcs = self._sources(sources, batch)
        locs = self._locations(unit_locations, batch)
        subs = normalize_subspaces(subspaces, len(self._slots), batch, self._partitions())
        consts = self._constants(source_representations)
        kinds = [self._source_kind(s, consts[s.index], srcs) for s in self._slots]
        additional = dict(additional or {})

        def write_for(s: _Slot, source: Any) -> Write:
            iv = self.interventions[s.key]
            return Write(
                key=s.key,
                intervention=iv,
                loc=locs[s.index][1],
                source=source,
                subspaces=subs[s.index],
                kwargs=additional,
                collect=isinstance(iv, CollectIntervention),
                module_input=bool(getattr(iv, "needs_module_input", False) or self.as_adaptor),
            )

        def constant(s: _Slot) -> Any:
            c = consts[s.index]
            if c is None:
                c = self.interventions[s.key].source_representation
            return c

        def source_of(s: _Slot) -> Any:
            kind = kinds[s.index]
            if kind == "constant":
                return constant(s)
            if kind == "none":
                return None
            return self._captured(s, locs[s.index][0], state)

        if self.mode == "parallel" or srcs is None:
            # without sources there is nothing to chain: every intervention acts on the base
            readers = [s for s in self._slots if kinds[s.index] == "run"]
            self._run_sources(readers, srcs, locs, state)
            return {s.index: write_for(s, source_of(s)) for s in self._slots if kinds[s.index] != "skip"}

        # serial: run k (source k) is intervened by group k - 1 and read by group k; the last
        # group writes into the base. A run is only needed for what its readers capture.
        previous: dict[int, Write] = {}
        for k in range(self._n_groups):
            readers = [s for s in self._slots if s.group == k and kinds[s.index] == "run"]
            if srcs[k] is not None and readers:
                run_state = RunState(stop_when_done=True, pending=len(readers))
                plan: dict[Site, tuple[list[Write], list[Capture]]] = {}
                for s in self._slots:
                    if s.index in previous:
                        plan.setdefault(s.site, ([], []))[0].append(previous[s.index])
                    if s in readers:
                        loc = locs[s.index][0]
                        capture = Capture(key=s.key, loc=loc, calls=self._t_calls(loc))
                        plan.setdefault(s.site, ([], []))[1].append(capture)
                self._read_run(srcs[k], plan, readers, run_state, state)
            previous = {
                s.index: write_for(s, source_of(s))
                for s in self._slots
                if s.group == k and kinds[s.index] != "skip"
            }
        return previous

    @staticmethod
    def _t_calls(loc: Loc) -> tuple[int, ...]:
        if loc.unit is not Unit.T:
            return ()
        if loc.index is None:
            raise UnitLocationError("unit 't' needs explicit timesteps in unit_locations.")
        return tuple(sorted(set(loc.index.flatten().tolist())))

    def _run_sources(
        self, readers: Sequence[_Slot], srcs: list[Any] | None, locs: list[tuple[Loc, Loc]], state: RunState
    ) -> None:
        """Run each distinct source once, batched into one forward where shapes allow."""
        if not readers or srcs is None:
            return
        distinct: list[Any] = []
        for s in readers:
            inp = srcs[s.group]
            if not any(inp is d for d in distinct):
                distinct.append(inp)
        merged = _concat(distinct) if len(distinct) > 1 else distinct[0]
        batch = _batch_size(distinct[0], "source")
        runs: list[tuple[Any, dict[int, slice]]] = []
        if merged is not None:
            runs.append((merged, {id(d): slice(j * batch, (j + 1) * batch) for j, d in enumerate(distinct)}))
        else:
            runs.extend((d, {id(d): slice(None)}) for d in distinct)
        for inputs, rows in runs:
            run_state = RunState(stop_when_done=True)
            plan: dict[Site, tuple[list[Write], list[Capture]]] = {}
            mine = [s for s in readers if id(srcs[s.group]) in rows]
            for s in mine:
                loc = locs[s.index][0]
                plan.setdefault(s.site, ([], []))[1].append(
                    Capture(key=s.key, loc=loc, rows=rows[id(srcs[s.group])], calls=self._t_calls(loc))
                )
            run_state.pending = len(mine)
            self._read_run(inputs, plan, mine, run_state, state)

    def _read_run(
        self,
        inputs: Any,
        plan: Mapping[Site, tuple[list[Write], list[Capture]]],
        readers: Sequence[_Slot],
        run_state: RunState,
        state: RunState,
    ) -> None:
        """One source run: hooks on, forward until the last capture, every site reached."""
        with run_hooks(self.model, [(a, w, c) for a, (w, c) in plan.items()], run_state, self._on_call):
            try:
                self._call(inputs)
            except StopForward:
                pass
        if run_state.pending > 0:
            missing = [s.key for s in readers if s.key not in run_state.captured]
            raise VeneError(
                f"the source run never reached the site(s) {missing or 'of some timesteps'}; the "
                "module is not called by this model's forward (or not that many times)."
            )
        state.captured.update(run_state.captured)

    def _captured(self, slot: _Slot, loc: Loc, state: RunState) -> Tensor:
        got = state.captured[slot.key]
        if slot.unit is not Unit.T:
            return got
        calls = sorted(got)
        stacked = torch.stack([got[c] for c in calls], dim=1)  # [B, C, ...]
        where = {c: j for j, c in enumerate(calls)}
        assert loc.index is not None  # t units always name their timesteps (checked in _t_calls)
        idx = torch.tensor([[where[t] for t in row] for row in loc.index.tolist()], device=stacked.device)
        shape = idx.shape + (1,) * (stacked.dim() - 2)
        return stacked.gather(1, idx.view(shape).expand(*idx.shape, *stacked.shape[2:]))

    # ------------------------------------------------------------------------------------------
    # generation
    # ------------------------------------------------------------------------------------------
    def generate(
        self,
        base: Mapping[str, Any],
        sources: Any = None,
        unit_locations: Any = None,
        source_representations: Any = None,
        intervene_on_prompt: bool = False,
        subspaces: Any = None,
        output_original_output: bool = False,
        intervene_on_steps: Any = None,
        intervention_additional_kwargs: Mapping[str, Any] | None = None,
        **generate_kwargs: Any,
    ) -> Any:
        """Generate with interventions; returns ``(original_or_None, generated_ids)``.

        ``base`` is the prompt as model inputs (``{"input_ids": ..., "attention_mask": ...}``;
        left-pad batches); ``generate_kwargs`` go to the model's ``generate``. Where the
        interventions apply:

        - ``intervene_on_prompt=True`` with ``unit_locations``: at those prompt positions.
        - ``intervene_on_prompt=True`` with ``unit_locations=None``: the whole tensor at every
          forward call, prompt and generated tokens (the steering recipe).
        - ``intervene_on_steps``: generated tokens, numbered from 1: step ``k`` is the k-th
          generated token, read at position ``prompt_len + k - 1`` by the next forward call (the
          last generated token is never read). ``"all"``, an int, or an iterable of ints. Without
          the prompt and without locations, the default is every generated token (as pyvene).

        Positions once intervened stay intervened when a call recomputes them
        (``use_cache=False``), so generating with and without the KV cache gives the same tokens.
        Sources are read once, before generating. With a collect intervention the first element is
        ``(original_or_None, activations)``: one tensor per forward call that intervened.
        Generation must feed one new token per sequence and call (greedy, sampling, beam search);
        assisted or speculative decoding is refused.
        """
        if not callable(getattr(self.model, "generate", None)):
            raise ConfigError(
                f"{type(self.model).__name__} has no generate() method; call the IntervenableModel "
                "itself to run a forward pass with interventions."
            )
        if isinstance(base, Tensor):
            base = {"input_ids": base}
        if not isinstance(base, Mapping):
            raise ConfigError(
                "generate() takes the prompt as a dict of model inputs, e.g. "
                f"{{'input_ids': ids, 'attention_mask': mask}}; got {type(base).__name__}."
            )
        if any(s.unit is Unit.T for s in self._slots):
            raise ConfigError("unit 't' (recurrent timesteps) cannot be used with generate().")
        whole = unit_locations is None
        steps = _generation_steps(intervene_on_steps, intervene_on_prompt, whole)
        generate: Callable[..., Any] = getattr(self.model, "generate")  # noqa: B009 -- nn.Module types attributes as tensors
        original = generate(**base, **generate_kwargs) if output_original_output else None
        state = RunState()
        writes = self._prepare(
            base, sources, unit_locations, source_representations, subspaces,
            intervention_additional_kwargs, state,
        )
        batch = _batch_size(base, "base")
        active: dict[int, list[Write]] = {}
        for i, w in writes.items():
            mine = active.setdefault(i, [])
            if intervene_on_prompt and whole and steps == "all":
                mine.append(w)  # no `active`: the whole tensor of every call
                continue
            flattens = isinstance(w.intervention, DistributedRepresentationIntervention) and not (
                w.intervention.keep_last_dim
            )
            if intervene_on_prompt:
                mine.append(evolve(w, active=_prompt_active(w.loc, whole, flattens)))
            if steps:
                mine.append(evolve(w, active=_generated_active(steps, w.loc.unit, batch, flattens)))
        plan: dict[Site, tuple[list[Write], list[Capture]]] = {}
        for s in self._slots:
            for w in active.get(s.index, ()):
                plan.setdefault(s.site, ([], []))[0].append(w)
        with run_hooks(self.model, [(s, w, c) for s, (w, c) in plan.items()], state, _generation_clock):
            generated = generate(**base, **generate_kwargs)
        return self._result(original, generated, state, None)

    # ------------------------------------------------------------------------------------------
    # artifacts
    # ------------------------------------------------------------------------------------------
    def _type_names(self) -> list[str]:
        names = []
        for s in self._slots:
            iv = self.interventions[s.key]
            name = type_name(type(iv))
            try:
                registered = self.registry.intervention_type(name)
            except MissingPluginError:
                registered = None
            if registered is not type(iv):
                raise ArtifactError(
                    f"{type(iv).__name__} is not a registered intervention type, so an artifact "
                    "could not be loaded again; register it through a vene plugin "
                    "(vene_intervention_types) first."
                )
            names.append(name)
        return names

    def _weights(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        seen: list[Intervention] = []
        for s in self._slots:
            iv = self.interventions[s.key]
            if any(iv is x for x in seen):
                continue  # linked: stored once, under the first key
            seen.append(iv)
            for k, v in iv.state_dict().items():
                out[f"{s.key}.{k}"] = v.detach().contiguous().cpu()
        return out

    def save(
        self,
        save_directory: str,
        save_to_hf_hub: bool = False,
        hf_repo_name: str | None = None,
        include_model: bool = False,
        **options: Any,
    ) -> str:
        """Write ``config.json`` and ``interventions.safetensors`` (and push them, for the Hub)."""
        from safetensors.torch import save_file, save_model

        os.makedirs(save_directory, exist_ok=True)
        kwargs = [self.interventions[s.key].init_kwargs for s in self._slots]
        data = self.config.to_dict(self._type_names())
        data["intervention_kwargs"] = kwargs
        data["vene_version"] = __version__
        data["base_model"] = _base_model_info(self.model)
        data["sites"] = [
            {"module": s.site.module, "side": s.site.side.value, "dim": s.site.dim} for s in self._slots
        ]
        with open(os.path.join(save_directory, art.CONFIG_NAME), "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        save_file(self._weights(), os.path.join(save_directory, art.WEIGHTS_NAME), metadata={"format": "pt"})
        if include_model:
            save_model(self.model, os.path.join(save_directory, art.MODEL_WEIGHTS_NAME))
        if save_to_hf_hub:
            if not hf_repo_name:
                raise ConfigError("save_to_hf_hub=True needs hf_repo_name='user/repo'.")
            store = self._store(hf_repo_name, options)
            return store.push(save_directory, hf_repo_name, **options)
        return save_directory

    def _store(self, location: str, options: Mapping[str, Any]) -> art.ArtifactStore:
        store = self.registry.pm.hook.vene_artifact_store(location=location, options=dict(options))
        if store is None:
            raise MissingPluginError(
                f"{location!r} is not a local directory and no installed plugin opens it; for "
                "Hugging Face Hub repos install vene-hf (pip install vene-hf)."
            )
        return store

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
        registry = registry or default_registry()
        directory = load_directory
        if not os.path.isdir(directory):
            store = registry.pm.hook.vene_artifact_store(location=load_directory, options=dict(options))
            if store is None:
                raise ArtifactError(
                    f"{load_directory!r} is not a directory, and no installed plugin opens it as a "
                    "remote location (for Hub repos: pip install vene-hf)."
                )
            directory = store.fetch(load_directory, **options)
        path = os.path.join(directory, art.CONFIG_NAME)
        if not os.path.exists(path):
            raise ArtifactError(f"{directory!r} holds no {art.CONFIG_NAME}; it is not a vene artifact.")
        with open(path) as f:
            data = json.load(f)
        try:
            config = IntervenableConfig.from_dict(data)
        except (ConfigError, KeyError, TypeError) as e:
            raise ArtifactError(f"{path} is not a valid vene config: {e}") from None
        reps = []
        for rep_data, rep in zip(data["representations"], config.representations):
            name = rep_data.get("intervention_type")
            try:
                registry.intervention_type(name)
            except MissingPluginError as e:
                raise ArtifactError(f"the artifact uses intervention type {name!r}: {e}") from None
            reps.append(RepresentationConfig.coerce({**_rep_fields(rep), "intervention_type": name}))
        config = IntervenableConfig(representations=reps, mode=config.mode)
        try:
            obj = cls(config, model, registry=registry, _saved_kwargs=data.get("intervention_kwargs"))
        except VeneError as e:
            raise ArtifactError(f"the artifact does not fit this model: {e}") from None
        for s, saved in zip(obj._slots, data.get("sites", [])):
            if saved.get("dim") is not None and s.site.dim is not None and saved["dim"] != s.site.dim:
                raise ArtifactError(
                    f"the artifact does not fit this model: {s.key} was saved for width "
                    f"{saved['dim']}, but this model's site {s.site.module} has width {s.site.dim}."
                )
        obj._load_weights(os.path.join(directory, art.WEIGHTS_NAME))
        return obj

    def _load_weights(self, path: str) -> None:
        from safetensors.torch import load_file

        if not os.path.exists(path):
            raise ArtifactError(f"missing {path}; the artifact is incomplete.")
        weights = load_file(path)
        seen: list[Intervention] = []
        for s in self._slots:
            iv = self.interventions[s.key]
            if any(iv is x for x in seen):
                continue
            seen.append(iv)
            prefix = f"{s.key}."
            mine = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            expected = iv.state_dict()
            for k, v in expected.items():
                if k not in mine:
                    raise ArtifactError(
                        f"the artifact has no weight {prefix}{k}; it was saved for other interventions."
                    )
                if mine[k].shape != v.shape:
                    raise ArtifactError(
                        f"the artifact does not fit this model: {prefix}{k} has shape "
                        f"{tuple(mine[k].shape)}, the intervention expects {tuple(v.shape)}."
                    )
            for k in set(mine) - set(expected):
                if k in iv._buffers and iv._buffers[k] is None:  # an empty buffer the file fills
                    iv._buffers[k] = mine[k]
                    expected[k] = mine[k]
            extra = set(mine) - set(expected)
            if extra:
                raise ArtifactError(f"the artifact has unexpected weights {sorted(extra)} for {s.key}.")
            device = next((t.device for t in expected.values()), None)
            iv.load_state_dict({k: v.to(device) if device is not None else v for k, v in mine.items()})

    def save_intervention(self, save_directory: str, include_model: bool = True) -> None:
        """Write the interventions' weights only (``interventions.safetensors``)."""
        from safetensors.torch import save_file

        os.makedirs(save_directory, exist_ok=True)
        save_file(self._weights(), os.path.join(save_directory, art.WEIGHTS_NAME))

    def load_intervention(self, load_directory: str, include_model: bool = True) -> None:
        """Load interventions' weights saved by :meth:`save_intervention`, in place."""
        self._load_weights(os.path.join(load_directory, art.WEIGHTS_NAME))

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

    __str__ = __repr__


def _rep_fields(rep: RepresentationConfig) -> dict[str, Any]:
    from ._config import _REP_FIELDS

    return {f: getattr(rep, f) for f in _REP_FIELDS}


def _base_model_info(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    info: dict[str, Any] = {"class": type(model).__name__}
    name = getattr(cfg, "_name_or_path", None) or getattr(cfg, "name_or_path", None)
    if name:
        info["name_or_path"] = name
    rev = getattr(cfg, "_commit_hash", None)
    if rev:
        info["revision"] = rev
    return info


def _generation_steps(steps: Any, on_prompt: bool, whole: bool) -> Any:
    """``intervene_on_steps`` -> ``"all"`` or a frozenset of generated steps (numbered from 1)."""
    if steps is None:
        if on_prompt:
            return "all" if whole else frozenset()
        if not whole:
            raise ConfigError(
                "unit_locations name prompt positions, but intervene_on_prompt is False, so nothing "
                "would be intervened: pass intervene_on_prompt=True to intervene the prompt there, "
                "intervene_on_steps=... to choose generated tokens, or unit_locations=None to "
                "intervene every generated token."
            )
        return "all"
    if isinstance(steps, str):
        if steps != "all":
            raise ConfigError(
                f"intervene_on_steps={steps!r}: give 'all', a step number, or a list of step numbers."
            )
        return "all"
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = [steps]
    try:
        chosen = frozenset(steps)
    except TypeError:
        chosen = frozenset([None])
    if not all(isinstance(k, int) and not isinstance(k, bool) for k in chosen):
        raise ConfigError(
            f"intervene_on_steps={steps!r}: give 'all', a step number, or a list of step numbers."
        )
    if any(k < 1 for k in chosen):
        raise ConfigError(
            f"intervene_on_steps={sorted(chosen)}: generated steps are numbered from 1 (step k is "
            "the k-th generated token); use intervene_on_prompt=True for the prompt."
        )
    return chosen


def _input_length(args: tuple, kwargs: dict) -> int | None:
    """How many tokens a forward call feeds (the decoder's, for encoder-decoder models)."""
    for name in ("decoder_input_ids", "decoder_inputs_embeds", "input_ids", "inputs_embeds"):
        v = kwargs.get(name)
        if isinstance(v, Tensor) and v.dim() >= 2:
            return v.shape[1]
    for v in args:
        if isinstance(v, Tensor) and v.dim() >= 2:
            return v.shape[1]
    return None


def _generation_clock(state: RunState, args: tuple, kwargs: dict) -> None:
    """Before each forward in generate(): which call this is and where its tokens start.

    Call 0 reads the prompt. Call k >= 1 reads the sequence up to position ``prompt_len + k``
    (exclusive): one token with the KV cache, all of them without.
    """
    state.step += 1
    length = _input_length(args, kwargs)
    if length is None:
        raise VeneError(
            "cannot tell how many tokens a generation step feeds: the model was called without "
            "input_ids or inputs_embeds."
        )
    if state.step == 0:
        state.prompt_len = length
        state.start = 0
        return
    end = state.prompt_len + state.step
    if length not in (1, end):
        raise VeneError(
            f"generation step {state.step} fed {length} tokens; interventions follow generation one "
            "token per forward call (greedy, sampling, beam search), so assisted or speculative "
            "decoding cannot be used with them."
        )
    state.start = end - length


def _prompt_active(loc: Loc, whole: bool, flattens: bool) -> Callable[[RunState], Loc | None]:
    """The prompt's location in calls that read the prompt, None in cached steps."""
    prompt: dict[int, Loc] = {}

    def active(state: RunState) -> Loc | None:
        if state.start != 0:  # a cached step: the prompt is in the cache, already intervened
            return None
        if whole and state.step > 0:
            # a recomputed step (no cache): the prompt positions again, not the generated ones
            if flattens:
                raise ConfigError(_NO_CACHE_DISTRIBUTED)
            if state.prompt_len not in prompt:
                prompt[state.prompt_len] = _positions(range(state.prompt_len), loc.unit, loc.batch)
            return prompt[state.prompt_len]
        return loc

    return active


def _generated_active(
    steps: Any, unit: Unit, batch: int, flattens: bool
) -> Callable[[RunState], Loc | None]:
    """The positions of the chosen generated tokens that a call reads, or None."""
    made: dict[tuple[int, ...], Loc] = {}

    def active(state: RunState) -> Loc | None:
        if state.step < 1:
            return None
        # step k sits at absolute position prompt_len + k - 1; this call reads [start, end)
        first = max(1, state.start - state.prompt_len + 1)
        candidates = range(first, state.step + 1)
        chosen = candidates if steps == "all" else [k for k in candidates if k in steps]
        positions = tuple(state.prompt_len + k - 1 - state.start for k in chosen)
        if not positions:
            return None
        if flattens and len(positions) > 1:
            raise ConfigError(_NO_CACHE_DISTRIBUTED)
        if positions not in made:  # with the cache every step reuses one location
            made[positions] = _positions(positions, unit, batch)
        return made[positions]

    return active


_NO_CACHE_DISTRIBUTED = (
    "a distributed intervention (a learned basis over the concatenated units) cannot be applied "
    "to recomputed positions one by one; generate with the KV cache (use_cache=True) or give "
    "explicit unit_locations for the prompt only."
)


def _positions(positions: Any, unit: Unit, batch: int) -> Loc:
    """The same positions in every example of the batch."""
    pos = list(positions)
    if unit.has_heads:
        raise ConfigError(
            "head units (h, h.pos) in generate() need intervene_on_prompt=True with explicit "
            "unit_locations; generated tokens are intervened per position, with unit 'pos'."
        )
    t = torch.tensor([pos] * batch, dtype=torch.long)
    return Loc(unit=unit, index=t, max_index=max(pos), batch=batch)
