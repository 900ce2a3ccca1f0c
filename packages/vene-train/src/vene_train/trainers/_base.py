"""The trainer base class: what is trained, the loss of one batch, and evaluation.

A trainer wraps an :class:`vene.IntervenableModel` and is built as ``cls(intervenable_model,
**options)`` (a :class:`TrainerOptions` record, see :mod:`._options`); every option may also be
passed to :meth:`Trainer.train_alignment`, where it overrides the constructor's value for that
call. The loop itself is :class:`._loop.TrainingRun`; batches are read as :mod:`._batches` says;
distributed runs are set up by :mod:`._distributed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from vene import IntervenableModel

from ._batches import batch_len, intervention_inputs, labels_of, to_device
from ._errors import TrainerError
from ._history import TrainingHistory
from ._loop import TrainingRun
from ._metrics import default_compute_loss, default_compute_metrics, extract_logits
from ._options import TrainerOptions

__all__ = ["Trainer"]

Metrics = Callable[..., dict[str, float]]
Collator = Callable[[Any], Mapping[str, Any]]


class Trainer:
    """Base class of the trainers: what is trained, the loss of a batch, evaluation.

    Subclasses set ``type_name`` and may override :meth:`parameters`, :meth:`compute_step_loss`,
    :meth:`evaluate`, :attr:`options_class` and :attr:`saves_model`.
    """

    type_name: ClassVar[str]
    #: The record of the options this trainer accepts.
    options_class: ClassVar[type[TrainerOptions]] = TrainerOptions
    #: Extra options a subclass accepts, with their defaults (a shorthand for a subclass of
    #: :class:`TrainerOptions` as ``options_class``).
    extra_options: ClassVar[dict[str, Any]] = {}
    #: Whether checkpoints include the wrapped model's weights (IIT changes them).
    saves_model: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        extra = cls.__dict__.get("extra_options")
        if extra and "options_class" not in cls.__dict__:
            cls.options_class = attrs.make_class(
                f"{cls.__name__}Options",
                {name: attrs.field(default=value) for name, value in extra.items()},
                bases=(cls.options_class,),
                frozen=True,
                kw_only=True,
            )

    def __init__(self, intervenable_model: IntervenableModel, **options: Any) -> None:
        if not isinstance(intervenable_model, IntervenableModel):
            raise TrainerError(
                f"{type(self).__name__} trains a vene.IntervenableModel, got "
                f"{type(intervenable_model).__name__}; wrap the model first: "
                "pv.IntervenableModel(config, model)."
            )
        self.model = intervenable_model
        self.options: TrainerOptions = self.options_class.from_kwargs(type(self).__name__, **options)
        self._opts: TrainerOptions = self.options  # the options of the current call
        self._compute_loss: Callable[[Tensor, Tensor], Tensor] = default_compute_loss
        self._compute_metrics: Metrics = default_compute_metrics

    def _call_options(self, options: Mapping[str, Any]) -> TrainerOptions:
        return self.options.updated(type(self).__name__, **options)

    # -- what is trained ----------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimizer updates: the interventions' trainable parameters."""
        return list(self.model.get_trainable_parameters())

    def unique_interventions(self) -> list[nn.Module]:
        """The model's interventions, each once (linked representations share one)."""
        seen: list[nn.Module] = []
        for iv in self.model.interventions.values():
            if not any(iv is s for s in seen):
                seen.append(iv)
        return seen

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer the ``optimizer`` option names (or builds), over ``params``."""
        o = self._opts
        if callable(o.optimizer):
            optimizer: torch.optim.Optimizer = o.optimizer(params, lr=o.lr)
            return optimizer
        kinds: dict[str, Callable[..., torch.optim.Optimizer]] = {
            "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD
        }
        return kinds[o.optimizer](params, lr=o.lr, weight_decay=o.weight_decay)

    # -- one batch ----------------------------------------------------------------------------
    def intervention_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the intervenable model's forward for one batch."""
        return intervention_inputs(batch, self.model.n_groups, self._opts)

    def _logits(self, outputs: Any) -> Tensor:
        logits_fn = self._opts.logits_fn or extract_logits
        logits: Tensor = logits_fn(outputs)
        return logits

    def intervened_logits(self, batch: Mapping[str, Any]) -> Tensor:
        """The logits of the base run with the batch's interchange interventions."""
        forward_fn = self._opts.forward_fn
        if forward_fn is not None:
            outputs = forward_fn(self.model, batch)
        else:
            _, outputs = self.model(**self.intervention_inputs(batch))
        return self._logits(outputs)

    def _labels(self, batch: Mapping[str, Any], key: str = "labels") -> Tensor:
        return labels_of(batch, key)

    def _regularisation(self) -> Tensor | float:
        w = self._opts.boundary_loss_weight
        if not w:
            return 0.0
        total: Tensor | float = 0.0
        for iv in self.unique_interventions():
            b = getattr(iv, "intervention_boundaries", None)
            if isinstance(b, Tensor):
                total = total + b.sum()
        return w * total

    def compute_step_loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, logits, labels)`` of one batch: the counterfactual loss (plus regularisers)."""
        logits = self.intervened_logits(batch)
        labels = self._labels(batch)
        loss = self._compute_loss(logits, labels) + self._regularisation()
        return loss, logits, labels

    # -- training -----------------------------------------------------------------------------
    def train_alignment(
        self,
        train_dataloader: Iterable[Any],
        compute_loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        compute_metrics: Metrics | None = None,
        inputs_collator: Collator | None = None,
        **options: Any,
    ) -> TrainingHistory:
        """Train on ``train_dataloader`` (pyvene's signature); returns the history.

        ``compute_loss(logits, labels) -> loss`` and ``compute_metrics([logits], [labels]) ->
        {"accuracy": ...}`` default to cross-entropy and accuracy over class indices;
        ``inputs_collator(batch)`` turns each batch into the mapping described in
        :mod:`vene_train.trainers._batches`. ``options`` override the trainer's for this call
        (``lr``, ``epochs``, ``gradient_accumulation_steps``, ``warmup_steps``, ``seed``,
        ``eval_dataloader``...).
        """
        self._opts = self._call_options(options)
        self._compute_loss = compute_loss or default_compute_loss
        self._compute_metrics = compute_metrics or default_compute_metrics
        return TrainingRun(self, train_dataloader, inputs_collator, self._opts).run()

    def _before_training(self) -> None:
        """Hook for subclasses (IIT turns the model's gradients on)."""

    def _after_training(self) -> None:
        """Hook for subclasses."""

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(
        self,
        eval_dataloader: Iterable[Any],
        compute_metrics: Metrics | None = None,
        inputs_collator: Collator | None = None,
    ) -> dict[str, float]:
        """Every metric of ``compute_metrics`` over ``eval_dataloader``, averaged with weights by
        batch size; ``accuracy`` of the counterfactual labels is the IIA."""
        compute_metrics = compute_metrics or self._compute_metrics
        device = self.model.get_device()
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        try:
            for batch in eval_dataloader:
                if inputs_collator is not None:
                    batch = inputs_collator(batch)
                batch = to_device(batch, device)
                b = batch_len(batch)
                metrics = self._eval_batch(batch, compute_metrics)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * b
                count += b
        finally:
            self.model.train(was_training)
        if count == 0:
            raise TrainerError("the eval_dataloader gave no batches.")
        return {k: v / count for k, v in sums.items()}

    def _eval_batch(self, batch: Mapping[str, Any], compute_metrics: Metrics) -> dict[str, float]:
        logits = self.intervened_logits(batch)
        return dict(compute_metrics([logits], [self._labels(batch)]))

    def eval_alignment(
        self,
        eval_dataloader: Iterable[Any],
        compute_metrics: Metrics | None = None,
        inputs_collator: Collator | None = None,
        **options: Any,
    ) -> float:
        """pyvene's evaluation: the batch-size-weighted ``accuracy`` (the IIA) as a float.

        :meth:`evaluate` returns every metric instead.
        """
        self._opts = self._call_options(options)
        if compute_metrics is not None:
            self._compute_metrics = compute_metrics
        result = self.evaluate(eval_dataloader, compute_metrics, inputs_collator)
        if "accuracy" not in result:
            raise TrainerError(
                f"compute_metrics returned {sorted(result)} without 'accuracy'; eval_alignment "
                "reports the accuracy (use evaluate() for other metrics)."
            )
        return result["accuracy"]
