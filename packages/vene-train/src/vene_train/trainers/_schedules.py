"""The learning-rate and temperature schedules of a training run."""

from __future__ import annotations

import math

from ._errors import TrainerError

__all__ = ["LR_SCHEDULERS", "TEMPERATURE_SCHEDULES", "lr_factor", "temperature_schedule"]

LR_SCHEDULERS = ("linear", "cosine", "constant")
TEMPERATURE_SCHEDULES = ("linear", "geometric")


def temperature_schedule(start: float, end: float, steps: int, kind: str = "linear") -> list[float]:
    """``steps`` temperatures from ``start`` to ``end``: evenly spaced (``linear``) or with a
    constant ratio (``geometric``)."""
    if kind not in TEMPERATURE_SCHEDULES:
        raise TrainerError(f"temperature_schedule must be 'linear' or 'geometric', got {kind!r}.")
    if steps <= 0:
        return []
    if steps == 1:
        return [float(end)]
    if kind == "linear":
        return [start + (end - start) * i / (steps - 1) for i in range(steps)]
    if start <= 0 or end <= 0:
        raise TrainerError("a geometric temperature schedule needs positive start and end.")
    ratio = (end / start) ** (1.0 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` steps (the first step already
    learns); then ``constant`` (1), ``linear`` decay to 0 at ``total``, or ``cosine`` decay.
    """
    if kind not in LR_SCHEDULERS:
        raise TrainerError(f"lr_scheduler must be 'linear', 'cosine' or 'constant', got {kind!r}.")
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
