"""The training loop in named steps: start, micro-batch, optimizer step, epoch end, checkpoint.

A :class:`TrainingRun` is one call of :meth:`Trainer.train_alignment`. :meth:`TrainingRun.run`
seeds, sets up the processes, builds the optimizer and the learning-rate schedule (warm-up then
decay), restores a checkpoint (:meth:`~TrainingRun.resume`) when asked, and for each epoch runs
:meth:`~TrainingRun.train_epoch` (each batch through :meth:`~TrainingRun.micro_batch`, every
``gradient_accumulation_steps`` of them closed by :meth:`~TrainingRun.optimizer_step`, which calls
:meth:`~TrainingRun.log`), then :meth:`~TrainingRun.end_epoch` (the epoch's metrics, evaluation,
a checkpoint, the callbacks). Only rank 0 shows progress, calls callbacks and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import _distributed
from ._batches import batch_len, to_device
from ._callbacks import dispatch
from ._checkpoints import load_state, restore_rng, save_state
from ._errors import TrainerError
from ._history import TrainingHistory
from ._options import TrainerOptions
from ._schedules import lr_factor, temperature_schedule

if TYPE_CHECKING:
    from ._base import Trainer

__all__ = ["TrainingRun", "seed_everything"]

Collator = Callable[[Any], Mapping[str, Any]]

logger = logging.getLogger(__name__)


def seed_everything(seed: int | None) -> None:
    """Seed ``random``, numpy (when installed) and torch on every device; nothing for None."""
    if seed is None:
        return
    random.seed(seed)
    torch.manual_seed(seed)  # every device
    try:
        import numpy as np
    except ImportError:  # numpy is optional; torch and random are seeded regardless
        return
    np.random.seed(seed % 2**32)


class _LossModule(nn.Module):
    """``forward(batch) -> (loss, logits, labels)``, one module so that DDP sees the whole step."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.intervenable = trainer.model
        self._trainer = [trainer]  # a list: not a submodule, so DDP does not see it twice

    def forward(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        return self._trainer[0].compute_step_loss(batch)


class _Epoch:
    """The running sums of one epoch: batch-size-weighted metrics and the open window."""

    def __init__(self) -> None:
        self.metric_sums: dict[str, float] = {}
        self.count = 0
        self.window_loss = 0.0
        self.window_start = 0
        self.window = 1

    def add(self, metrics: Mapping[str, Any], size: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self.metric_sums[k] = self.metric_sums.get(k, 0.0) + float(v) * size
        self.count += size

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.metric_sums.items()}


class TrainingRun:
    """One training run of ``trainer`` over ``loader``; :meth:`run` returns its history."""

    def __init__(
        self,
        trainer: Trainer,
        loader: Iterable[Any],
        collator: Collator | None,
        options: TrainerOptions,
    ) -> None:
        self.trainer = trainer
        self.model = trainer.model
        self.options = options
        self.collator = collator
        self.loader: Any = loader
        self.device = self.model.get_device()
        self.world = _distributed.World()
        self.history = TrainingHistory()
        self.n_batches = 0
        self.total_steps = 0
        self.warmup = 0
        self.params: list[nn.Parameter] = []
        self.temperatures: list[float] = []
        self.tempered = False
        self.step_module: nn.Module = _LossModule(trainer)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.bar: Any = None

    # -- start --------------------------------------------------------------------------------
    def _plan(self) -> None:
        """Seed, join the processes, take this process's shard and count the steps."""
        o = self.options
        seed_everything(o.seed)
        self.world = _distributed.setup(o.distributed, self.device)
        if self.world.ddp and o.shard_data:
            self.loader = _distributed.shard(self.loader, self.world, o.seed or 0)
        try:
            self.n_batches = len(self.loader)
        except TypeError:
            raise TrainerError(
                "train_dataloader has no len(); the schedules need the number of batches. Use a "
                "DataLoader or a list of batches."
            ) from None
        steps_per_epoch = math.ceil(self.n_batches / o.gradient_accumulation_steps)
        self.total_steps = steps_per_epoch * o.epochs
        self.warmup = o.warmup(self.total_steps)
        self.params = self.trainer.parameters()
        if not self.params:
            trainer = self.trainer
            raise TrainerError(
                f"{type(trainer).__name__} found nothing to train: the interventions have no trainable "
                "parameters. Use a trainable intervention type (RotatedSpaceIntervention, ...)"
                + (", or the 'iit' trainer to train the model itself." if trainer.type_name == "das" else ".")
            )

    def _build(self) -> None:
        """The optimizer, the schedules, the (DDP-wrapped) loss module and the progress bar."""
        o = self.options
        self.optimizer = self.trainer.make_optimizer(self.params)
        warmup, total, kind = self.warmup, self.total_steps, o.lr_scheduler
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, total, kind)
        )
        self.temperatures = temperature_schedule(
            float(o.temperature_start), float(o.temperature_end), self.total_steps, o.temperature_schedule
        )
        self.tempered = any(hasattr(iv, "set_temperature") for iv in self.trainer.unique_interventions())
        if self.tempered and self.temperatures:
            self.model.set_temperature(self.temperatures[0])  # optimizer step k runs at temps[k]
        if self.world.ddp:
            self.step_module = _distributed.wrap(self.step_module, self.device, o.find_unused_parameters)
        self.model.train()
        self.bar = tqdm(
            total=self.total_steps,
            desc=f"{self.trainer.type_name} training",
            disable=not o.progress or not self.world.main,
            dynamic_ncols=True,
        )

    def run(self) -> TrainingHistory:
        """Train for ``epochs`` epochs; the model is left in eval mode, whatever happens."""
        self._plan()
        self.trainer._before_training()
        try:
            self._build()
            start = 0
            if self.options.resume_from_checkpoint is not None:
                start = self.resume(self.options.resume_from_checkpoint)
            for epoch in range(start, self.options.epochs):
                self.train_epoch(epoch)
            if self.options.checkpoint_dir is not None:
                self.save_checkpoint("final", self.options.epochs - 1)
        finally:
            if self.bar is not None:
                self.bar.close()
            self.model.eval()
            self.trainer._after_training()
        return self.history

    # -- the steps ----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> None:
        """One pass over this process's batches, then :meth:`end_epoch`."""
        sampler = getattr(self.loader, "sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        state = _Epoch()
        accum = self.options.gradient_accumulation_steps
        for i, batch in enumerate(self.loader):
            if self.collator is not None:
                batch = self.collator(batch)
            batch = to_device(batch, self.device)
            if i == state.window_start:
                state.window = min(accum, self.n_batches - state.window_start)
            last_in_window = i == state.window_start + state.window - 1
            metrics = self.micro_batch(batch, state, sync=last_in_window)
            if last_in_window:
                self.optimizer_step(epoch, state.window_loss, metrics)
                state.window_loss = 0.0
                state.window_start = i + 1
        self.end_epoch(epoch, state)

    def micro_batch(self, batch: Mapping[str, Any], state: _Epoch, *, sync: bool) -> dict[str, float]:
        """Forward and backward of one batch (its loss divided by the window's size); under DDP
        the gradients are averaged across processes only when ``sync`` (the window's last)."""
        context: Any = contextlib.nullcontext()
        if self.world.ddp and not sync:
            context = self.step_module.no_sync()  # type: ignore[operator]  # DDP's method, which nn.Module lacks
        with context:
            loss, logits, labels = self.step_module(batch)
            (loss / state.window).backward()
        state.window_loss += float(loss.detach()) / state.window
        with torch.no_grad():
            metrics = dict(self.trainer._compute_metrics([logits.detach()], [labels]))
        state.add(metrics, batch_len(batch))
        return metrics

    def optimizer_step(self, epoch: int, loss: float, metrics: Mapping[str, Any]) -> None:
        """Clip, step the optimizer and the schedules, record the step, update the bar."""
        assert self.optimizer is not None and self.scheduler is not None  # built by _build
        o, h = self.options, self.history
        if o.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, o.max_grad_norm)
        h.learning_rates.append(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        h.losses.append(loss)
        if self.tempered and self.temperatures:
            h.temperatures.append(self.temperatures[h.global_step])
            if h.global_step + 1 < len(self.temperatures):
                self.model.set_temperature(self.temperatures[h.global_step + 1])
        h.global_step += 1
        self.bar.update(1)
        if h.global_step % o.log_every == 0:
            self.log(epoch, loss, metrics)

    def log(self, epoch: int, loss: float, metrics: Mapping[str, Any]) -> None:
        """The progress bar's figures, a debug line, and the callbacks' ``on_log``."""
        h = self.history
        post: dict[str, Any] = {"epoch": epoch, "loss": round(loss, 4)}
        if "accuracy" in metrics:
            post["acc"] = round(float(metrics["accuracy"]), 3)
        self.bar.set_postfix(post)
        logs = {"loss": loss, "learning_rate": h.learning_rates[-1], "epoch": epoch, "step": h.global_step}
        if "accuracy" in metrics:
            logs["accuracy"] = float(metrics["accuracy"])
        if h.temperatures:
            logs["temperature"] = h.temperatures[-1]
        logger.debug("step %d: loss %.6g, learning rate %.6g", h.global_step, loss, logs["learning_rate"])
        if self.world.main:
            dispatch(self.options.callbacks, "on_log", logs, h.global_step)

    def end_epoch(self, epoch: int, state: _Epoch) -> None:
        """Record the epoch's training metrics, evaluate, and write the epoch's checkpoint."""
        o = self.options
        self.history.train_metrics.append(state.means())
        if o.eval_dataloader is not None:
            self.evaluate_epoch(epoch)
        if o.checkpoint_dir is not None and o.save_every_epoch and epoch < o.epochs - 1:
            self.save_checkpoint(f"epoch-{epoch}", epoch)
        logs = {f"train_{k}": v for k, v in self.history.train_metrics[-1].items()}
        if o.eval_dataloader is not None:
            logs.update({f"eval_{k}": v for k, v in self.history.eval_metrics[-1].items()})
        if self.world.main:
            dispatch(o.callbacks, "on_epoch_end", epoch, logs)

    def evaluate_epoch(self, epoch: int) -> None:
        """Evaluate ``eval_dataloader`` into the history (and a line under the bar)."""
        o = self.options
        result = self.trainer.evaluate(
            o.eval_dataloader, self.trainer._compute_metrics, o.eval_inputs_collator or self.collator
        )
        self.history.eval_metrics.append(result)
        self.model.train()
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items())
        logger.info("epoch %d: eval %s", epoch, shown)
        if self.world.main and o.progress:
            self.bar.write(f"epoch {epoch}: eval {shown}")

    def save_checkpoint(self, name: str, epoch: int) -> None:
        """``IntervenableModel.save`` to ``<checkpoint_dir>/<name>`` on rank 0, with the state a
        resumed run needs after ``epoch``; every process waits until it is written."""
        assert self.options.checkpoint_dir is not None  # callers check
        assert self.optimizer is not None and self.scheduler is not None  # built by _build
        path = os.path.join(self.options.checkpoint_dir, name)
        self.history.checkpoints.append(path)
        if self.world.main:
            self.model.save(path, include_model=self.trainer.saves_model)
            save_state(path, epoch=epoch, history=self.history, optimizer=self.optimizer, scheduler=self.scheduler)
        _distributed.barrier()  # the checkpoint is complete before any process reads it

    def resume(self, path: str) -> int:
        """Restore what the checkpoint ``path`` holds; returns the epoch to go on with."""
        assert self.optimizer is not None and self.scheduler is not None  # built by _build
        state = load_state(path)
        steps_per_epoch = math.ceil(self.n_batches / self.options.gradient_accumulation_steps)
        if state.history.global_step != (state.epoch + 1) * steps_per_epoch:
            raise TrainerError(
                f"the checkpoint {path!r} was written after {state.history.global_step} steps in "
                f"{state.epoch + 1} epochs, but this run makes {steps_per_epoch} steps per epoch; "
                "resume with the same data, batch size and gradient_accumulation_steps."
            )
        self.model.load_intervention(path)
        if self.trainer.saves_model:
            from safetensors.torch import load_model

            load_model(self.model.model, os.path.join(path, "model.safetensors"))
        try:
            self.optimizer.load_state_dict(state.optimizer)
        except (ValueError, KeyError) as e:
            raise TrainerError(
                f"the optimizer state in {path!r} does not fit this run's optimizer ({e}); resume "
                "with the same trainer, interventions and optimizer."
            ) from None
        self.scheduler.load_state_dict(state.scheduler)
        self.history = state.history
        step = self.history.global_step
        self.bar.update(step)
        if self.tempered and step < len(self.temperatures):
            self.model.set_temperature(self.temperatures[step])
        restore_rng(state.rng)
        return state.epoch + 1
