"""Data for interchange intervention training: subset counterfactuals, their collator, loaders.

:func:`subset_counterfactual_dataset` draws counterfactual examples from a
:class:`~vene_train.causal.CausalModel` where each example intervenes on its own non-empty
subset of some variables, recorded as a bitmask in ``intervention_id`` (bit ``k``: variable
``k``). :class:`InterchangeCollator` turns a batch of them into the trainers' batch, one source
per variable, so examples with different interventions share a batch. :func:`seeded_loader` is a
``DataLoader`` whose shuffling repeats.

.. code-block:: python

    data = subset_counterfactual_dataset(causal_model, ["S"], 1000, seed=0)
    loader = seeded_loader(data, 32, shuffle=True, seed=0)
    DASTrainer(intervenable).train_alignment(loader, inputs_collator=InterchangeCollator(1))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from attrs import field, frozen
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vene import ConfigError

from .causal import CausalModel

__all__ = ["DataError", "InterchangeCollator", "seeded_loader", "subset_counterfactual_dataset"]

Setting = dict[str, Any]


class DataError(ConfigError):
    """Data that the helpers of :mod:`vene_train.data` cannot use (says what, and how to fix it)."""


def subset_counterfactual_dataset(
    model: CausalModel,
    variables: Sequence[str],
    size: int,
    *,
    seed: int,
    sampler: Callable[..., Setting] | None = None,
    inputs_function: Callable[[Setting], Tensor] | None = None,
    outputs_function: Callable[[Setting], Tensor] | None = None,
) -> list[dict[str, Any]]:
    """``size`` counterfactual examples, each intervening on a non-empty subset of ``variables``.

    The subset is uniform over the ``2**len(variables) - 1`` non-empty ones and each intervened
    variable takes a value uniform over its values; ``intervention_id`` is the subset's bitmask
    (bit ``k``: ``variables[k]``) and the sources are in the causal model's variable order, as
    :meth:`CausalModel.generate_counterfactual_dataset` writes them (``sampler``,
    ``inputs_function`` and ``outputs_function`` are passed to it). ``seed`` fixes every draw.
    """
    if not variables:
        raise DataError("subset_counterfactual_dataset needs at least one variable to intervene on.")
    unknown = [v for v in variables if v not in model.variables]
    if unknown:
        raise DataError(f"{unknown} are not variables of the causal model; its variables: {model.variables}.")
    ordered = [v for v in model.variables if v in variables]
    if list(variables) != ordered:
        raise DataError(f"list the variables in the causal model's order: {ordered}.")
    rng = random.Random(seed)
    subsets = list(range(1, 2 ** len(variables)))

    def intervention_sampler() -> Setting:
        mask = rng.choice(subsets)
        return {v: rng.choice(model.values[v]) for k, v in enumerate(variables) if mask >> k & 1}

    def intervention_id(intervention: Mapping[str, Any]) -> int:
        return sum(1 << k for k, v in enumerate(variables) if v in intervention)

    return model.generate_counterfactual_dataset(
        size,
        intervention_id,
        batch_size=1,  # every example draws its own intervention; the collator mixes them
        sampler=sampler,
        intervention_sampler=intervention_sampler,
        inputs_function=inputs_function,
        outputs_function=outputs_function,
        seed=seed,
    )


def _at_least_1(_: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{attribute.name} must be a positive int, got {value!r}.")


@frozen
class InterchangeCollator:
    """Collated subset counterfactuals -> the trainers' batch, one source per variable.

    Variable ``k`` feeds intervention group ``k`` (which interchanges subspace partition ``k``,
    ``subspaces=[[k]]``); an example that does not intervene on variable ``k`` gets its own base
    as that source, which leaves the base unchanged, so examples with different interventions
    share one batch. Groups from ``n_variables`` to ``n_groups`` (default: none) get no source
    (``None``): their sites are not hypothesised to hold a variable. Tensors are passed to the
    model as ``input_key``.

    A batch needs ``input_ids`` ``[batch, ...]``, ``source_input_ids`` ``[batch, n_sources,
    ...]`` (the sources of the intervened variables, in order), ``intervention_id`` (bitmasks),
    ``labels`` and ``base_labels``.
    """

    n_variables: int = field(validator=_at_least_1)
    input_key: str = "inputs_embeds"
    n_groups: int | None = field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.n_groups is not None and (
            isinstance(self.n_groups, bool) or not isinstance(self.n_groups, int) or self.n_groups < self.n_variables
        ):
            raise DataError(
                f"n_groups must be an int >= n_variables ({self.n_variables}), got {self.n_groups!r}."
            )

    def _check(self, batch: Mapping[str, Any]) -> Tensor:
        missing = [
            k for k in ("input_ids", "source_input_ids", "intervention_id", "labels", "base_labels") if k not in batch
        ]
        if missing:
            raise DataError(
                f"InterchangeCollator needs {missing} in each batch (keys are {sorted(batch)}); "
                "subset_counterfactual_dataset makes such examples."
            )
        ids = batch["intervention_id"].reshape(-1).long()
        if ids.numel() != batch["input_ids"].shape[0]:
            raise DataError(
                f"intervention_id has {ids.numel()} entries for {batch['input_ids'].shape[0]} examples; "
                "give one id per example."
            )
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= 2**self.n_variables):
            raise DataError(
                f"intervention_id {int(ids.max()) if int(ids.min()) >= 0 else int(ids.min())} is not a "
                f"bitmask of {self.n_variables} variables (0 to {2**self.n_variables - 1})."
            )
        used = sum((ids >> k) & 1 for k in range(self.n_variables))
        sources = batch["source_input_ids"]
        if sources.dim() < 2 or (len(ids) and sources.shape[1] < int(used.max())):
            raise DataError(
                f"source_input_ids of shape {tuple(sources.shape)} has fewer sources per example than "
                f"the {int(used.max()) if len(ids) else 0} variables an example intervenes on."
            )
        return ids

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Any]:
        ids = self._check(batch)
        base = batch["input_ids"]
        sources = batch["source_input_ids"]
        rows = torch.arange(base.shape[0])
        n = base.shape[0]
        out_sources: list[dict[str, Tensor] | None] = []
        subspaces: list[list[list[int]] | None] = []
        for k in range(self.n_variables):
            on = (ids >> k) & 1
            # the slot of variable k: how many intervened variables come before it
            slot = torch.zeros_like(ids)
            for j in range(k):
                slot = slot + ((ids >> j) & 1)
            slot = slot.clamp(max=sources.shape[1] - 1)  # where k is off the slot is not read
            keep = on.bool().reshape(-1, *([1] * (base.dim() - 1)))
            src = torch.where(keep, sources[rows, slot], base)
            out_sources.append({self.input_key: src})
            subspaces.append([[k]] * n)
        for _ in range(self.n_variables, self.n_groups or self.n_variables):
            out_sources.append(None)
            subspaces.append(None)
        return {
            "base": {self.input_key: base},
            "sources": out_sources,
            "subspaces": subspaces,
            "labels": batch["labels"],
            "base_labels": batch["base_labels"],
        }


def seeded_loader(
    data: Sequence[Mapping[str, Any]], batch_size: int, *, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A ``DataLoader`` over ``data`` whose shuffling (``shuffle=True``) is fixed by ``seed``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive int, got {batch_size!r}.")
    g = torch.Generator().manual_seed(seed)
    # a list is a map-style dataset to torch (it reads len() and [i]); its annotation wants a Dataset
    dataset = cast("Dataset[Mapping[str, Any]]", list(data))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g)
