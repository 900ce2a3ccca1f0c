"""Reading a batch: moving it to the device, its size, and the intervenable model's call arguments.

A batch (after ``inputs_collator``) is a mapping. The keys read:

``base``
    the model inputs of the base (a dict, or a tensor). Instead, pyvene's ``input_ids`` (passed
    to the model as ``input_key``: ``inputs_embeds`` when the tensor is floating point,
    ``input_ids`` otherwise), with ``attention_mask`` if present.
``sources``
    a list of model inputs, one per intervention group (``None`` skips a group). Instead,
    pyvene's ``source_input_ids`` of shape ``[batch, n_sources, ...]`` (source ``k`` feeds group
    ``k``), with ``source_attention_mask`` if present.
``labels``
    the counterfactual labels; ``base_labels`` the factual ones (IIT's task loss).
``unit_locations``, ``subspaces``, ``source_representations``, ``intervention_additional_kwargs``
    passed to the intervenable model's forward when present (else the options of the same names;
    an option may be a function ``f(batch)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ._errors import TrainerError
from ._options import TrainerOptions

__all__ = ["to_device", "batch_len", "labels_of", "intervention_inputs"]


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor in it (in dicts, lists, tuples) moved to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _plain(value: Any) -> Any:
    """Locations and subspaces collated into tensors go back to the lists the engine reads."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return [_plain(v) for v in value]
    return value


def batch_len(batch: Mapping[str, Any]) -> int:
    """The number of examples in ``batch``."""
    for key in ("labels", "input_ids", "inputs_embeds"):
        v = batch.get(key)
        if isinstance(v, Tensor) and v.dim() > 0:
            return int(v.shape[0])
    base = batch.get("base")
    if isinstance(base, Tensor):
        return int(base.shape[0])
    if isinstance(base, Mapping):
        for v in base.values():
            if isinstance(v, Tensor) and v.dim() > 0:
                return int(v.shape[0])
    raise TrainerError(
        "cannot tell the batch size: the batch has no 'labels', 'input_ids' or 'base' tensor."
    )


def labels_of(batch: Mapping[str, Any], key: str = "labels") -> Tensor:
    """``batch[key]``, or an error that says how to add it."""
    if key not in batch:
        raise TrainerError(
            f"the batch has no {key!r} (keys are {sorted(batch)}); an inputs_collator can add it."
        )
    labels: Tensor = batch[key]
    return labels


def _model_inputs(value: Any, mask: Any, input_key: str | None) -> Any:
    if isinstance(value, Mapping) or value is None:
        return value
    key = input_key
    if key is None:
        key = "inputs_embeds" if torch.is_floating_point(value) else "input_ids"
    out = {key: value}
    if mask is not None:
        out["attention_mask"] = mask
    return out


def _option(batch: Mapping[str, Any], options: TrainerOptions, name: str) -> Any:
    if name in batch:
        return _plain(batch[name])
    value = getattr(options, name)
    if callable(value):
        return _plain(value(batch))
    return value


def _base(batch: Mapping[str, Any], input_key: str | None) -> Any:
    if "base" in batch:
        return batch["base"]
    if "inputs_embeds" in batch:
        base = {"inputs_embeds": batch["inputs_embeds"]}
        if batch.get("attention_mask") is not None:
            base["attention_mask"] = batch["attention_mask"]
        return base
    if "input_ids" in batch:
        return _model_inputs(batch["input_ids"], batch.get("attention_mask"), input_key)
    raise TrainerError(
        "the batch has no base inputs: give 'base' (a dict of model inputs) or 'input_ids' "
        f"(keys are {sorted(batch)}); an inputs_collator can build them."
    )


def _sources(batch: Mapping[str, Any], n_groups: int, input_key: str | None) -> list[Any] | None:
    if "sources" in batch:
        sources = batch["sources"]
        if isinstance(sources, (Mapping, Tensor)):
            sources = [sources]
        return [_model_inputs(s, None, input_key) for s in sources]
    if "source_input_ids" not in batch:
        return None
    src = batch["source_input_ids"]
    if src.dim() < 2:
        raise TrainerError(
            f"source_input_ids must be [batch, n_sources, ...]; got shape {tuple(src.shape)}."
        )
    if src.shape[1] < n_groups:
        raise TrainerError(
            f"source_input_ids holds {src.shape[1]} sources per example but the model has "
            f"{n_groups} intervention groups; give one source per group."
        )
    smask = batch.get("source_attention_mask")
    return [
        _model_inputs(src[:, k], None if smask is None else smask[:, k], input_key)
        for k in range(n_groups)
    ]


def intervention_inputs(batch: Mapping[str, Any], n_groups: int, options: TrainerOptions) -> dict[str, Any]:
    """The keyword arguments of the intervenable model's forward for one batch, for a model
    whose call takes ``n_groups`` sources."""
    kwargs: dict[str, Any] = {
        "base": _base(batch, options.input_key),
        "sources": _sources(batch, n_groups, options.input_key),
    }
    for name in ("unit_locations", "subspaces"):
        kwargs[name] = _option(batch, options, name)
    for name in ("source_representations", "intervention_additional_kwargs"):
        if name in batch:
            kwargs[name] = batch[name]
    return kwargs
