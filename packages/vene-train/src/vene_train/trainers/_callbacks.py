"""Callbacks of a training run: what a callback may define, and the logging callback.

A callback is any object with some of these methods (transformers' ``TrainerCallback`` names):

``on_log(logs, step)``
    every ``log_every`` optimizer steps: ``logs`` holds ``loss``, ``learning_rate``, ``epoch``,
    ``step``, ``accuracy`` when the metrics have it, and ``temperature`` when one is annealed.
``on_epoch_end(epoch, logs)``
    after each epoch: ``logs`` holds the epoch's ``train_*`` metrics and, with an
    ``eval_dataloader``, its ``eval_*`` metrics.

Callbacks run on the main process (rank 0) only, so a tracker records each step once. Pass them as
the ``callbacks`` option; :class:`LoggingCallback` writes both events to the ``vene_train`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._errors import TrainerError

__all__ = ["CALLBACK_EVENTS", "TrainerCallback", "LoggingCallback", "check_callbacks", "dispatch"]

#: The events a callback may handle.
CALLBACK_EVENTS = ("on_log", "on_epoch_end")

logger = logging.getLogger("vene_train")


@runtime_checkable
class TrainerCallback(Protocol):
    """A callback handling every event (a callback may also define only some of them)."""

    def on_log(self, logs: Mapping[str, float], step: int) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None: ...


class LoggingCallback:
    """Writes each log and each epoch's metrics to the ``vene_train`` logger at ``level``."""

    def __init__(self, level: int = logging.INFO) -> None:
        self.level = level

    def on_log(self, logs: Mapping[str, float], step: int) -> None:
        logger.log(self.level, "step %d: %s", step, _shown(logs))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        logger.log(self.level, "epoch %d: %s", epoch, _shown(logs))


def _shown(logs: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())


def check_callbacks(value: Any) -> tuple[Any, ...]:
    """``value`` as a tuple of callbacks, each handling at least one event; else an error."""
    items = (value,) if any(hasattr(value, e) for e in CALLBACK_EVENTS) else value
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise TrainerError(
            f"callbacks must be a list of objects with {' or '.join(CALLBACK_EVENTS)} methods, got "
            f"{type(value).__name__}."
        )
    for cb in items:
        if not any(callable(getattr(cb, e, None)) for e in CALLBACK_EVENTS):
            raise TrainerError(
                f"the callback {cb!r} has none of the methods {', '.join(CALLBACK_EVENTS)}; a "
                "callback handles at least one event (see vene_train.trainers.TrainerCallback)."
            )
    return tuple(items)


def dispatch(callbacks: Sequence[Any], event: str, *args: Any) -> None:
    """Call ``event`` on every callback that defines it."""
    for cb in callbacks:
        handler = getattr(cb, event, None)
        if handler is not None:
            handler(*args)
