"""What a training run returns: losses, learning rates, metrics and checkpoints."""

from __future__ import annotations

from attrs import define, field

__all__ = ["TrainingHistory"]


@define
class TrainingHistory:
    """What a training run did, step by step and epoch by epoch.

    ``losses``, ``learning_rates`` and ``temperatures`` have one entry per optimizer step (the
    loss averaged over the accumulated micro-batches, and the learning rate and temperature the
    step ran with; no temperatures when no intervention has one); ``train_metrics`` and
    ``eval_metrics`` one dict per epoch (``eval_metrics`` only with an ``eval_dataloader``; its
    ``accuracy`` is the IIA); ``checkpoints`` the directories written.
    """

    losses: list[float] = field(factory=list)
    learning_rates: list[float] = field(factory=list)
    temperatures: list[float] = field(factory=list)
    train_metrics: list[dict[str, float]] = field(factory=list)
    eval_metrics: list[dict[str, float]] = field(factory=list)
    checkpoints: list[str] = field(factory=list)
    global_step: int = 0

    @property
    def final_eval(self) -> dict[str, float] | None:
        """The metrics of the last evaluation, or None."""
        return self.eval_metrics[-1] if self.eval_metrics else None
