"""Metrics for patching sweeps: callables from logits at one position to one score per example.

A metric is any callable ``metric(logits) -> Tensor[batch]`` where ``logits`` is
``[batch, vocab]`` at the position the metric reads; that position is the metric's ``position``
attribute (default ``-1``, the last one). A plain function is read at position ``-1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from attrs import field, frozen
from torch import Tensor

from .._errors import ConfigError

__all__ = ["Metric", "logit_diff", "target_prob", "kl_divergence", "metric_name", "metric_position"]

Metric = Callable[[Tensor], Tensor]


@frozen
class logit_diff:  # noqa: N801 -- a metric reads like a function call: vp.logit_diff(a, b)
    """``logit(target_id) - logit(other_id)`` at ``position``."""

    target_id: int
    other_id: int
    position: int = -1
    label: str | None = None

    def __call__(self, logits: Tensor) -> Tensor:
        return logits[:, self.target_id] - logits[:, self.other_id]

    @property
    def name(self) -> str:
        return self.label or f"logit_diff({self.target_id},{self.other_id})"


@frozen
class target_prob:  # noqa: N801 -- see logit_diff
    """The softmax probability of ``token_id`` at ``position``."""

    token_id: int
    position: int = -1
    label: str | None = None

    def __call__(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=-1)[:, self.token_id]

    @property
    def name(self) -> str:
        return self.label or f"target_prob({self.token_id})"


@frozen
class kl_divergence:  # noqa: N801 -- see logit_diff
    """``KL(reference || patched)`` per example; ``reference_logits`` is ``[vocab]`` or ``[1, vocab]``."""

    reference_logits: Tensor = field(eq=False)
    position: int = -1
    label: str | None = None

    def __call__(self, logits: Tensor) -> Tensor:
        ref = torch.log_softmax(self.reference_logits.float().reshape(1, -1), dim=-1).to(logits.device)
        if ref.shape[-1] != logits.shape[-1]:
            raise ConfigError(
                f"kl_divergence: reference_logits have {ref.shape[-1]} entries but the model's "
                f"logits have {logits.shape[-1]}; pass the reference logits at one position ([vocab])."
            )
        cur = torch.log_softmax(logits.float(), dim=-1)
        return (ref.exp() * (ref - cur)).sum(-1)

    @property
    def name(self) -> str:
        return self.label or "kl_divergence"


def metric_position(metric: Any) -> int:
    """The position a metric reads (``metric.position``, default -1)."""
    pos = getattr(metric, "position", -1)
    if not isinstance(pos, int):
        raise ConfigError(f"metric.position must be an int, got {pos!r}.")
    return pos


def metric_name(metric: Any) -> str:
    """A readable name: ``metric.name``, else the function's name."""
    name = getattr(metric, "name", None)
    if isinstance(name, str):
        return name
    return getattr(metric, "__name__", type(metric).__name__)
