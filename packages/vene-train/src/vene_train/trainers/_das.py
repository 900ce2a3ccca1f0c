"""Distributed alignment search: learn the interventions, keep the model frozen."""

from __future__ import annotations

from typing import ClassVar

from ._base import Trainer

__all__ = ["DASTrainer"]


class DASTrainer(Trainer):
    """DAS and Boundless DAS (registered as ``"das"``).

    Trains the trainable parameters of the interventions (a rotation, its boundaries, a mask...)
    so that the base run with the interchange interventions predicts the counterfactual
    ``labels``; the wrapped model stays frozen. Interventions with a temperature (Boundless DAS,
    sigmoid masks) follow the schedule from ``temperature_start`` to ``temperature_end`` over the
    optimizer steps; ``boundary_loss_weight`` adds the sum of the learned boundaries to the loss
    (Boundless DAS's push towards small subspaces).
    ``IntervenableModel.train_alignment`` / ``eval_alignment`` use this trainer.
    """

    type_name: ClassVar[str] = "das"
