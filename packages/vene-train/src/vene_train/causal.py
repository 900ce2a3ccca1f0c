"""``CausalModel``: a finite causal graph that states a hypothesis about how a task is solved.

(Over 500 lines: one class whose samplers and dataset generators share the graph's cached state.)

A causal model has variables, a finite set of values per variable, the parents of each variable
and a function per variable that computes its value from its parents' values. Variables without
parents are the *inputs*; variables that are nobody's parent are the *outputs*. The model runs
forward from inputs, runs interventions (a variable fixed to a value) and interchange
interventions (a variable set to the value it takes on another input), samples inputs, and
generates the factual and counterfactual datasets that distributed alignment search (DAS) and
interchange intervention training (IIT) learn from::

    model = CausalModel(
        variables=["A", "B", "S"],
        values={"A": [0, 1], "B": [0, 1], "S": [0, 1, 2]},
        parents={"A": [], "B": [], "S": ["A", "B"]},
        functions={"S": lambda a, b: a + b},
    )
    model.run_forward({"A": 1, "B": 1})["S"]                      # 2
    model.run_interchange({"A": 1, "B": 1}, {"A": {"A": 0, "B": 1}})["S"]   # 1

The API follows pyvene's ``CausalModel``; where pyvene has known faults this class does the right
thing instead: forward runs follow a topological order (an intervened variable is never
overwritten), the default sampler of ``generate_counterfactual_dataset`` can reach any requested
value, the caller's lists are never mutated, and every bad input raises a
:class:`CausalModelError` that says what to fix.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch

from vene import ConfigError

__all__ = ["CausalModel", "CausalModelError"]

Setting = dict[str, Any]

# Enumerating the parent settings of a variable (for balanced sampling) is a Cartesian product;
# past this many combinations it would take too long, and the error says how to avoid it.
_MAX_PARENT_COMBINATIONS = 2_000_000
_MAX_TRIES = 10_000


class CausalModelError(ConfigError):
    """A causal model that cannot be built or run: a cycle, a missing function, a bad value."""


def _key(value: Any) -> Hashable:
    """A hashable stand-in for a value, so that arrays and tensors can be compared and looked up."""
    kind = type(value)
    if kind is int or kind is str or kind is float:  # the common case, first
        return value
    if kind is bool:
        return ("bool", value)  # True == 1 would otherwise make True and 1 the same value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        value = value.item()  # numpy / torch scalars compare as the Python numbers they hold
    if hasattr(value, "tobytes") and hasattr(value, "shape") and hasattr(value, "dtype"):
        return ("array", str(value.dtype), tuple(value.shape), value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _key(v)) for k, v in value.items())))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    if isinstance(value, bool):
        return ("bool", value)  # True == 1 would otherwise make True and 1 the same value
    return value


class CausalModel:
    """A finite causal graph (pyvene's ``CausalModel``).

    Args:
        variables: the variable names.
        values: the finite list of values each variable can take.
        parents: the parents of each variable (``[]`` for inputs); the order is the order of the
            arguments of the variable's function.
        functions: for each non-input variable, ``f(*parent_values) -> value``. Inputs may have a
            function taking no arguments, used when a forward run is not given that input.
        pos: optional plotting positions ``{variable: (x, y)}``; defaults are laid out by
            timestep.
        timesteps: optional ``{variable: step}``; by default inputs are at step 0 and every other
            variable one step after its latest parent, outputs at the last step.
        equiv_classes: optional precomputed ``{variable: {value: [parent settings]}}`` for the
            balanced sampler; computed on first use otherwise.
        seed: seed of the model's own random generator (``self.rng``); None uses fresh
            randomness. ``generate_*`` accept a ``seed`` too.
        check_values: check every value a function returns (or an intervention sets) against the
            variable's ``values``.

    Raises:
        CausalModelError: a parent that is not a variable, a cycle, a variable without values,
            a non-input variable without a function.
    """

    def __init__(
        self,
        variables: Sequence[str],
        values: Mapping[str, Sequence[Any]],
        parents: Mapping[str, Sequence[str]],
        functions: Mapping[str, Callable[..., Any]],
        pos: Mapping[str, tuple[float, float]] | None = None,
        *,
        timesteps: Mapping[str, int] | None = None,
        equiv_classes: Mapping[str, Mapping[Any, list[Setting]]] | None = None,
        seed: int | None = None,
        check_values: bool = True,
    ) -> None:
        names = list(variables)
        if len(set(names)) != len(names):
            dup = sorted({v for v in names if names.count(v) > 1})
            raise CausalModelError(f"variables {dup} are listed more than once; name each once.")
        if not names:
            raise CausalModelError("a causal model needs at least one variable.")
        known = set(names)
        for what, table in (("values", values), ("parents", parents), ("functions", functions)):
            extra = sorted(set(table) - known)
            if extra:
                raise CausalModelError(
                    f"{what} names {extra}, which are not in variables {names}; add them to "
                    "variables or remove them."
                )
        self.values: dict[str, list[Any]] = {}
        for v in names:
            if v not in values:
                raise CausalModelError(
                    f"variable {v!r} has no values; give values[{v!r}] = [every value it can take]."
                )
            domain = list(values[v])
            if not domain:
                raise CausalModelError(f"values[{v!r}] is empty; a variable needs at least one value.")
            self.values[v] = domain
        self.parents: dict[str, list[str]] = {}
        for v in names:
            if v not in parents:
                raise CausalModelError(
                    f"variable {v!r} has no entry in parents; give parents[{v!r}] = [] for an input."
                )
            ps = list(parents[v])
            unknown = [p for p in ps if p not in known]
            if unknown:
                raise CausalModelError(
                    f"parents[{v!r}] names {unknown}, which are not variables; variables are {names}."
                )
            if v in ps:
                raise CausalModelError(f"variable {v!r} is its own parent: the graph has a cycle {v} -> {v}.")
            self.parents[v] = ps
        self.children: dict[str, list[str]] = {v: [] for v in names}
        for v in names:
            for p in self.parents[v]:
                self.children[p].append(v)
        order = self._topological_order(names)
        self.functions: dict[str, Callable[..., Any]] = dict(functions)
        for v in names:
            if self.parents[v]:
                if v not in self.functions:
                    raise CausalModelError(
                        f"variable {v!r} has parents {self.parents[v]} but no function; give "
                        f"functions[{v!r}] = lambda {', '.join(p.lower() for p in self.parents[v])}: ..."
                    )
            f = self.functions.get(v)
            if f is not None and not callable(f):
                raise CausalModelError(f"functions[{v!r}] is not callable.")
        if timesteps is not None:
            missing = [v for v in names if v not in timesteps]
            if missing:
                raise CausalModelError(f"timesteps has no step for {missing}.")
            for v in names:
                late = [p for p in self.parents[v] if timesteps[p] >= timesteps[v]]
                if late:
                    raise CausalModelError(
                        f"timesteps put parents {late} of {v!r} at or after {v!r}; a parent must "
                        "come at an earlier step."
                    )
            self.timesteps: dict[str, int] = dict(timesteps)
        else:
            self.timesteps = {}
            for v in order:
                self.timesteps[v] = 1 + max((self.timesteps[p] for p in self.parents[v]), default=-1)
        self.end_time = max(self.timesteps.values())
        outputs = [v for v in names if not self.children[v]]
        if timesteps is None:
            for v in outputs:
                if self.parents[v]:
                    self.timesteps[v] = self.end_time
        # pyvene's order: by timestep, then by name (so input tensors concatenate alphabetically)
        self.variables: list[str] = sorted(names, key=lambda v: (self.timesteps[v], v))
        self._order = order
        self.inputs = [v for v in self.variables if not self.parents[v]]
        self.outputs = [v for v in self.variables if not self.children[v] and self.parents[v]]
        if not self.outputs:  # a model of inputs only: the inputs are its outputs
            self.outputs = [v for v in self.variables if not self.children[v]]
        self.check_values = check_values
        self._value_keys = {v: {_key(x) for x in self.values[v]} for v in names}
        self.rng = random.Random(seed)
        self.equiv_classes: dict[str, dict[Any, list[Setting]]] = {}
        self._reachable: dict[str, list[Any]] = {}
        if equiv_classes is not None:
            self.equiv_classes = {k: {vk: list(s) for vk, s in c.items()} for k, c in equiv_classes.items()}
        self.pos: dict[str, tuple[float, float]] = dict(pos or {})
        width: dict[int, int] = {}
        for v in self.variables:
            if v not in self.pos:
                t = self.timesteps[v]
                self.pos[v] = (float(width.get(t, 0)), float(t))
                width[t] = width.get(t, 0) + 1

    # ------------------------------------------------------------------------------------------
    # structure
    # ------------------------------------------------------------------------------------------
    def _topological_order(self, names: list[str]) -> list[str]:
        """Kahn's algorithm; a leftover means a cycle, which is found and named."""
        indegree = {v: len(self.parents[v]) for v in names}
        ready = [v for v in names if indegree[v] == 0]
        order: list[str] = []
        while ready:
            v = ready.pop(0)
            order.append(v)
            for c in self.children[v]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        if len(order) != len(names):
            left = [v for v in names if v not in order]
            raise CausalModelError(
                f"the graph has a cycle {' -> '.join(self._find_cycle(left))}; a causal model "
                "must be acyclic (remove one of these parent links)."
            )
        return order

    def _find_cycle(self, left: list[str]) -> list[str]:
        start = left[0]
        path = [start]
        seen = {start: 0}
        v = start
        while True:
            v = next(p for p in self.parents[v] if p in left)
            if v in seen:
                cycle = path[seen[v]:] + [v]
                return list(reversed(cycle))
            seen[v] = len(path)
            path.append(v)

    @property
    def intermediates(self) -> list[str]:
        """Variables that are neither inputs nor outputs (the candidates for alignment)."""
        return [v for v in self.variables if v not in self.inputs and v not in self.outputs]

    def __repr__(self) -> str:
        edges = ", ".join(f"{p}->{v}" for v in self.variables for p in self.parents[v])
        return f"CausalModel(inputs={self.inputs}, outputs={self.outputs}, edges=[{edges}])"

    def print_structure(self) -> None:
        """Print each variable with its parents, by timestep (a text view of the graph)."""
        for v in self.variables:
            ps = ", ".join(self.parents[v]) or "input"
            print(f"t={self.timesteps[v]}  {v} <- {ps}")  # noqa: T201 - printing is this method's job (pyvene API)

    # ------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------
    def _check(self, var: str, value: Any, how: str) -> None:
        if self.check_values and _key(value) not in self._value_keys[var]:
            shown = self.values[var][:8]
            more = ", ..." if len(self.values[var]) > 8 else ""
            raise CausalModelError(
                f"{how} gives {var!r} the value {value!r}, which is not in values[{var!r}] "
                f"({', '.join(map(repr, shown))}{more}); add it to the values or fix the "
                f"{'function' if how.startswith('the function') else 'setting'}."
            )

    def _check_names(self, setting: Mapping[str, Any], what: str) -> None:
        unknown = sorted(set(setting) - set(self.values))
        if unknown:
            raise CausalModelError(
                f"{what} names {unknown}, which are not variables; variables are {self.variables}."
            )

    def run_forward(self, intervention: Mapping[str, Any] | None = None) -> Setting:
        """Every variable's value, with the variables in ``intervention`` fixed to its values.

        ``intervention`` holds the inputs (and optionally intervened non-input variables). An
        input that is not given takes the value of its function, if it has one.
        """
        intervention = dict(intervention or {})
        self._check_names(intervention, "the intervention")
        total: Setting = {}
        for v in self._order:
            if v in intervention:
                value = intervention[v]
                self._check(v, value, "the intervention")
            elif not self.parents[v]:
                f = self.functions.get(v)
                if f is None:
                    raise CausalModelError(
                        f"input {v!r} has no value: give it in the input setting, or give "
                        f"functions[{v!r}] = lambda: default_value."
                    )
                value = f()
                self._check(v, value, f"the function of {v!r}")
            else:
                value = self.functions[v](*(total[p] for p in self.parents[v]))
                self._check(v, value, f"the function of {v!r}")
            total[v] = value
        return {v: total[v] for v in self.variables}

    def run_interchange(self, input: Mapping[str, Any], source_dict: Mapping[str, Mapping[str, Any]]) -> Setting:
        """Run ``input`` with each variable in ``source_dict`` set to its value on that source.

        ``source_dict`` maps a variable to the input setting whose forward run supplies its value.
        """
        self._check_names(source_dict, "source_dict")
        intervention = dict(input)
        for var, source in source_dict.items():
            intervention[var] = self.run_forward(source)[var]
        return self.run_forward(intervention)

    # ------------------------------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        """Reseed the model's random generator (``self.rng``)."""
        self.rng.seed(seed)

    def _random_inputs(self) -> Setting:
        return {v: self.rng.choice(self.values[v]) for v in self.inputs}

    def _output_var(self, output_var: str | None) -> str:
        if output_var is None:
            return self.outputs[0] if len(self.outputs) == 1 else self.rng.choice(self.outputs)
        if output_var not in self.values:
            raise CausalModelError(
                f"output_var {output_var!r} is not a variable; variables are {self.variables}."
            )
        return output_var

    def sample_input(
        self,
        mandatory: Callable[[Setting], bool] | None = None,
        output_var: str | None = None,
        output_var_value: Any = None,
    ) -> Setting:
        """A uniformly random input setting.

        ``mandatory(total_setting)`` must hold for the result; with ``output_var`` (and
        ``output_var_value``) the variable must take that value. Both are met by rejection.
        """
        want = output_var is not None and output_var_value is not None
        target: str | None = None  # the variable whose value is wanted
        if want:
            target = self._output_var(output_var)
            self._check(target, output_var_value, "output_var_value")
        for _ in range(_MAX_TRIES):
            inputs = self._random_inputs()
            if mandatory is None and target is None:
                return inputs
            total = self.run_forward(inputs)
            if mandatory is not None and not mandatory(total):
                continue
            if target is not None and _key(total[target]) != _key(output_var_value):
                continue
            return inputs
        raise CausalModelError(
            f"no input meeting the conditions was found in {_MAX_TRIES} random tries "
            f"({'mandatory' if mandatory else ''}{' and ' if mandatory and want else ''}"
            f"{f'{output_var}={output_var_value!r}' if want else ''}); the condition may be "
            "impossible, or too rare for rejection sampling: use sample_input_tree_balanced."
        )

    def _ensure_classes(self, var: str) -> dict[Any, list[Setting]]:
        """``{value key: [parent settings giving that value]}``, over reachable parent values."""
        if var in self.equiv_classes and var in self._reachable:
            return self.equiv_classes[var]
        if not self.parents[var]:
            self._reachable[var] = list(self.values[var])
            return {}
        domains = [self._reachable_values(p) for p in self.parents[var]]
        n = 1
        for d in domains:
            n *= len(d)
        if var in self.equiv_classes:  # given by the user
            classes = {_key(k): v for k, v in self.equiv_classes[var].items()}
        else:
            if n > _MAX_PARENT_COMBINATIONS:
                raise CausalModelError(
                    f"balanced sampling of {var!r} would enumerate {n} parent settings; pass "
                    "equiv_classes for it, or use sample_input with a condition."
                )
            classes = {}
            for combo in itertools.product(*domains):
                value = self.functions[var](*combo)
                self._check(var, value, f"the function of {var!r}")
                classes.setdefault(_key(value), []).append(dict(zip(self.parents[var], combo)))
        self.equiv_classes[var] = classes
        self._reachable[var] = [x for x in self.values[var] if _key(x) in classes]
        return classes

    def _reachable_values(self, var: str) -> list[Any]:
        self._ensure_classes(var)
        return self._reachable[var]

    def reachable_values(self, var: str) -> list[Any]:
        """The values of ``var`` that some input produces (all values, for an input)."""
        if var not in self.values:
            raise CausalModelError(f"{var!r} is not a variable; variables are {self.variables}.")
        return list(self._reachable_values(var))

    def add_equiv_classes(self) -> None:
        """Compute the equivalence classes of every non-input variable (pyvene's name)."""
        for v in self.variables:
            self._ensure_classes(v)

    def sample_input_tree_balanced(
        self, output_var: str | None = None, output_var_value: Any = None
    ) -> Setting:
        """A random input whose ``output_var`` value is uniform over its reachable values.

        The value is drawn first, then a parent setting that produces it, recursively down to
        the inputs, so every value (and, at each level, every way of producing it) is equally
        likely. ``output_var`` defaults to the model's output.
        """
        var = self._output_var(output_var)
        reachable = self._reachable_values(var)
        if output_var_value is None:
            output_var_value = self.rng.choice(reachable)
        else:
            self._check(var, output_var_value, "output_var_value")
            if _key(output_var_value) not in {_key(x) for x in reachable}:
                raise CausalModelError(
                    f"{var!r} never takes the value {output_var_value!r}: no input produces it."
                )
        target = _key(output_var_value)
        for _ in range(_MAX_TRIES):
            inputs: Setting = {}
            self._build(var, output_var_value, inputs)
            for v in self.inputs:
                if v not in inputs:
                    inputs[v] = self.rng.choice(self.values[v])
            # a variable reached along two paths may be set twice; keep only consistent draws
            if _key(self.run_forward(inputs)[var]) == target:
                return inputs
        raise CausalModelError(  # pragma: no cover - only for adversarial graphs
            f"could not build an input with {var}={output_var_value!r} in {_MAX_TRIES} tries."
        )

    def _build(self, var: str, value: Any, inputs: Setting) -> None:
        if not self.parents[var]:
            inputs[var] = value
            return
        parent_values = self.rng.choice(self._ensure_classes(var)[_key(value)])
        for p, pv in parent_values.items():
            self._build(p, pv, inputs)

    def sample_intervention(self, mandatory: Callable[[Setting], bool] | None = None) -> Setting:
        """A random non-empty intervention on intermediate variables, with reachable values."""
        candidates = self.intermediates
        if not candidates:
            raise CausalModelError(
                "the model has no intermediate variables to intervene on; pass an "
                "intervention_sampler that names the variables to intervene on."
            )
        for _ in range(_MAX_TRIES):
            chosen = [v for v in candidates if self.rng.random() < 0.5]
            if not chosen:
                continue
            intervention = {v: self.rng.choice(self._reachable_values(v)) for v in chosen}
            if mandatory is None or mandatory(intervention):
                return intervention
        raise CausalModelError("no intervention meeting `mandatory` was found.")

    # ------------------------------------------------------------------------------------------
    # tensors and datasets
    # ------------------------------------------------------------------------------------------
    def input_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """The inputs' values as floats, concatenated in ``self.inputs`` order."""
        parts = [torch.as_tensor(setting[v], dtype=torch.float32).reshape(-1) for v in self.inputs]
        return torch.cat(parts)

    def output_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """The outputs' values as floats, concatenated in ``self.outputs`` order."""
        parts = [torch.as_tensor(setting[v], dtype=torch.float32).reshape(-1) for v in self.outputs]
        return torch.cat(parts)

    @staticmethod
    def _pick(new: Any, old: Any, new_name: str, old_name: str) -> Any:
        if new is not None and old is not None:
            raise CausalModelError(f"pass {new_name} or its old name {old_name}, not both.")
        return new if new is not None else old

    def generate_factual_dataset(
        self,
        size: int,
        sampler: Callable[[], Setting] | None = None,
        filter: Callable[[Setting], bool] | None = None,
        device: Any = "cpu",
        inputs_function: Callable[[Setting], torch.Tensor] | None = None,
        outputs_function: Callable[[Setting], torch.Tensor] | None = None,
        return_tensors: bool = True,
        *,
        seed: int | None = None,
        inputFunction: Callable[[Setting], torch.Tensor] | None = None,  # noqa: N803 - pyvene's name
        outputFunction: Callable[[Setting], torch.Tensor] | None = None,  # noqa: N803 - pyvene's name
    ) -> list[dict[str, Any]]:
        """``size`` examples ``{"input_ids": inputs, "labels": outputs}`` of factual runs.

        ``sampler()`` draws an input setting (default :meth:`sample_input`); ``filter(input)``
        rejects some; ``inputs_function``/``outputs_function`` turn settings into tensors
        (default :meth:`input_to_tensor` / :meth:`output_to_tensor`). With
        ``return_tensors=False`` the settings themselves are returned. A list of dicts of tensors
        is what ``torch.utils.data.DataLoader`` batches with its default collation.
        """
        inputs_function = self._pick(inputs_function, inputFunction, "inputs_function", "inputFunction")
        outputs_function = self._pick(outputs_function, outputFunction, "outputs_function", "outputFunction")
        inputs_function = inputs_function or self.input_to_tensor
        outputs_function = outputs_function or self.output_to_tensor
        sampler = sampler or self.sample_input
        if seed is not None:
            self.seed(seed)
        examples: list[dict[str, Any]] = []
        rejected = 0
        while len(examples) < size:
            setting = sampler()
            if filter is not None and not filter(setting):
                rejected += 1
                if rejected > _MAX_TRIES and not examples:
                    raise CausalModelError("the filter rejected every sampled input; loosen it.")
                continue
            output = self.run_forward(setting)
            if return_tensors:
                examples.append(
                    {
                        "input_ids": inputs_function(setting).to(device),
                        "labels": outputs_function(output).to(device),
                    }
                )
            else:
                examples.append({"input_ids": setting, "labels": output})
        return examples

    def generate_counterfactual_dataset(
        self,
        size: int,
        intervention_id: Callable[[Setting], int],
        batch_size: int,
        sampler: Callable[..., Setting] | None = None,
        intervention_sampler: Callable[[], Setting] | None = None,
        filter: Callable[[Setting], bool] | None = None,
        device: Any = "cpu",
        inputs_function: Callable[[Setting], torch.Tensor] | None = None,
        outputs_function: Callable[[Setting], torch.Tensor] | None = None,
        return_tensors: bool = True,
        *,
        seed: int | None = None,
        inputFunction: Callable[[Setting], torch.Tensor] | None = None,  # noqa: N803 - pyvene's name
        outputFunction: Callable[[Setting], torch.Tensor] | None = None,  # noqa: N803 - pyvene's name
    ) -> list[dict[str, Any]]:
        """``size`` interchange-intervention examples, in runs of ``batch_size`` that share one
        sampled intervention (so a batch of that size has one intervention type).

        For each run an intervention ``{variable: value}`` is drawn by ``intervention_sampler``
        (default :meth:`sample_intervention`) and kept if ``filter(intervention)``; then for each
        example a base input is drawn by ``sampler()`` and, for each intervened variable (in
        ``self.variables`` order), a source input by ``sampler(output_var=var,
        output_var_value=value)`` (default :meth:`sample_input_tree_balanced`). Each example is::

            {"input_ids": base, "source_input_ids": [n_intermediates, ...] sources, zero-padded,
             "labels": outputs of the interchange, "base_labels": outputs of the base,
             "intervention_id": [intervention_id(intervention)]}

        With ``return_tensors=False`` the settings are returned instead of tensors.
        """
        inputs_function = self._pick(inputs_function, inputFunction, "inputs_function", "inputFunction")
        outputs_function = self._pick(outputs_function, outputFunction, "outputs_function", "outputFunction")
        inputs_function = inputs_function or self.input_to_tensor
        outputs_function = outputs_function or self.output_to_tensor
        sampler = sampler or self.sample_input_tree_balanced
        intervention_sampler = intervention_sampler or self.sample_intervention
        if batch_size < 1:
            raise CausalModelError(f"batch_size must be at least 1, got {batch_size}.")
        if seed is not None:
            self.seed(seed)
        maxlength = max(len(self.intermediates), 1)
        examples: list[dict[str, Any]] = []
        rejected = 0
        while len(examples) < size:
            intervention = intervention_sampler()
            self._check_names(intervention, "the sampled intervention")
            if filter is not None and not filter(intervention):
                rejected += 1
                if rejected > _MAX_TRIES and not examples:
                    raise CausalModelError("the filter rejected every sampled intervention; loosen it.")
                continue
            iid = intervention_id(intervention)
            if isinstance(iid, bool) or not isinstance(iid, int):
                raise CausalModelError(
                    f"intervention_id({intervention!r}) returned {iid!r}; it must return an int."
                )
            if len(intervention) > maxlength:
                maxlength = len(intervention)
            for _ in range(min(batch_size, size - len(examples))):
                base = sampler()
                sources: list[Setting] = []
                source_dict: dict[str, Setting] = {}
                for var in self.variables:
                    if var not in intervention:
                        continue
                    source = sampler(output_var=var, output_var_value=intervention[var])
                    sources.append(source)
                    source_dict[var] = source
                counterfactual = self.run_interchange(base, source_dict)
                factual = self.run_forward(base)
                if not return_tensors:
                    examples.append(
                        {
                            "input_ids": base,
                            "source_input_ids": sources,
                            "labels": counterfactual,
                            "base_labels": factual,
                            "intervention_id": iid,
                        }
                    )
                    continue
                base_t = inputs_function(base)
                source_ts = [inputs_function(s) for s in sources]
                examples.append(
                    {
                        "input_ids": base_t.to(device),
                        "source_input_ids": source_ts,
                        "labels": outputs_function(counterfactual).to(device),
                        "base_labels": outputs_function(factual).to(device),
                        "intervention_id": torch.tensor([iid], device=device),
                    }
                )
        if return_tensors:
            # pad every example's sources to the same count, so that the default collation works
            for ex in examples:
                srcs = ex["source_input_ids"]
                shape = ex["input_ids"].shape
                srcs = srcs + [torch.zeros(shape, dtype=ex["input_ids"].dtype)] * (maxlength - len(srcs))
                ex["source_input_ids"] = torch.stack([s.to(device) for s in srcs])
        return examples
