"""Interchange intervention training: train the model so that a site carries a variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vene import call_model

from ._base import Trainer
from ._errors import TrainerError
from ._options import IITOptions, TrainerOptions

__all__ = ["IITTrainer"]


class IITTrainer(Trainer):
    """IIT (Geiger et al., 2022), registered as ``"iit"``.

    Turns the wrapped model's gradients on (``enable_model_gradients``) and trains its weights
    (and any trainable intervention) on ``iit_loss_weight`` × the counterfactual loss of the
    interchange interventions against ``labels`` plus ``task_loss_weight`` × the task loss of the
    plain base run against ``base_labels``, so the model keeps solving the task while the
    intervened site comes to carry the causal variable. Evaluation reports the IIA
    (``accuracy``) and, when batches have ``base_labels``, the task accuracy
    (``task_accuracy``). Checkpoints include the model's weights (``model.safetensors``).
    After training the model's gradients are switched back off if they were off before.
    """

    type_name: ClassVar[str] = "iit"
    saves_model: ClassVar[bool] = True
    options_class: ClassVar[type[TrainerOptions]] = IITOptions

    def __init__(self, intervenable_model: Any, **options: Any) -> None:
        super().__init__(intervenable_model, **options)
        self._restore_grads = False

    @property
    def _iit(self) -> IITOptions:
        assert isinstance(self._opts, IITOptions)  # options_class makes them
        return self._opts

    def parameters(self) -> list[nn.Parameter]:
        # the model's parameters are frozen until _before_training turns their gradients on
        params = list(self.model.model.parameters())
        if self._iit.train_interventions:
            params += list(self.model.get_trainable_parameters())
        return params

    def _before_training(self) -> None:
        self._restore_grads = not any(p.requires_grad for p in self.model.model.parameters())
        self.model.enable_model_gradients()

    def _after_training(self) -> None:
        if self._restore_grads:
            self.model.disable_model_gradients()

    def _task_logits(self, batch: Mapping[str, Any]) -> Tensor:
        base = self.intervention_inputs(batch)["base"]
        return self._logits(call_model(self.model.model, base))

    def compute_step_loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        o = self._iit
        logits = self.intervened_logits(batch)
        labels = self._labels(batch)
        loss = o.iit_loss_weight * self._compute_loss(logits, labels) + self._regularisation()
        if o.task_loss_weight:
            if "base_labels" not in batch:
                raise TrainerError(
                    "IIT's task loss needs 'base_labels' in each batch (the factual labels of the "
                    "base); add them, or pass task_loss_weight=0."
                )
            task_logits = self._task_logits(batch)
            loss = loss + o.task_loss_weight * self._compute_loss(task_logits, batch["base_labels"])
        return loss, logits, labels

    def _eval_batch(
        self, batch: Mapping[str, Any], compute_metrics: Callable[..., dict[str, float]]
    ) -> dict[str, float]:
        out = super()._eval_batch(batch, compute_metrics)
        if "base_labels" in batch:
            with torch.no_grad():
                task = compute_metrics([self._task_logits(batch)], [batch["base_labels"]])
            out.update({f"task_{k}": v for k, v in task.items()})
        return out
